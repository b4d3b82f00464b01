package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"gearbox/store/internalapi"
)

// maxBody caps the body of an internal API request.
const maxBody = 256 << 20

// Handler serves the store's part of the internal API: membership, and the
// digest, summary, get and put calls of anti-entropy (internalapi.PathMembers
// and internalapi.PathStore*). Mount it on the member's internal listener,
// served over internalapi.ServerTLS and behind internalapi.RequirePeer.
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+internalapi.PathMembers, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, membersResponse{Self: s.cfg.Name, Members: s.Members()})
	})
	mux.HandleFunc("GET "+internalapi.PathStoreStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statusResponse{
			Member: s.cfg.Name, Digest: s.Digest(), Records: s.Len(),
			LastSync: s.LastSync().UnixMilli(), Stats: s.Stats(),
		})
	})
	mux.HandleFunc("POST "+internalapi.PathStoreDigest, func(w http.ResponseWriter, r *http.Request) {
		var req digestRequest
		if !readJSON(w, r, &req) {
			return
		}
		resp := digestResponse{Children: make(map[string][]string, len(req.Prefixes)), LastSync: s.db.lastSync().UnixMilli()}
		for _, p := range req.Prefixes {
			c, ok := s.db.children(p)
			if !ok {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("bad digest prefix %q", p)})
				return
			}
			resp.Children[p] = c
		}
		writeJSON(w, http.StatusOK, resp)
	})
	mux.HandleFunc("POST "+internalapi.PathStoreSummaries, func(w http.ResponseWriter, r *http.Request) {
		var req digestRequest
		if !readJSON(w, r, &req) {
			return
		}
		sums, err := s.db.summaries(req.Prefixes)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, summariesResponse{Summaries: sums, LastSync: s.db.lastSync().UnixMilli()})
	})
	mux.HandleFunc("POST "+internalapi.PathStoreGet, func(w http.ResponseWriter, r *http.Request) {
		var req getRequest
		if !readJSON(w, r, &req) {
			return
		}
		recs, err := s.db.getMany(req.Refs)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, recordsBody{Records: recs})
	})
	mux.HandleFunc("POST "+internalapi.PathStorePut, func(w http.ResponseWriter, r *http.Request) {
		var req recordsBody
		if !readJSON(w, r, &req) {
			return
		}
		applied, err := s.merge(req.Records, fromPush)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"applied": len(applied)})
	})
	return mux
}

type membersResponse struct {
	Self    string   `json:"self"`
	Members []Member `json:"members"`
}

type statusResponse struct {
	Member   string `json:"member"`
	Digest   string `json:"digest"`
	Records  int    `json:"records"`
	LastSync int64  `json:"last_sync_ms"`
	Stats    Stats  `json:"stats"`
}

type digestRequest struct {
	Prefixes []string `json:"prefixes"`
}

type digestResponse struct {
	Children map[string][]string `json:"children"`
	LastSync int64               `json:"last_sync_ms"`
}

type summariesResponse struct {
	Summaries []Summary `json:"summaries"`
	LastSync  int64     `json:"last_sync_ms"`
}

type getRequest struct {
	Refs []Ref `json:"refs"`
}

type recordsBody struct {
	Records []Record `json:"records"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request body: " + err.Error()})
		return false
	}
	return true
}

// peerClient calls peers' internal APIs. Its http client presents the
// certificate derived from the cluster secret (internalapi.Transport).
type peerClient struct {
	http *http.Client
}

func (c *peerClient) call(ctx context.Context, addr, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, internalapi.URL(addr, path), body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if internalapi.Refused(err) {
		return fmt.Errorf("%s %s: %w: %w", method, addr, ErrUnauthorized, err)
	}
	if err != nil {
		return err
	}
	// Read to the end (the JSON decoder leaves the final newline), so that
	// the connection is reused: a new one costs a TLS handshake.
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%s %s: %w", method, addr, ErrUnauthorized)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s%s: %s: %s", method, addr, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s%s: decode response: %w", method, addr, path, err)
	}
	return nil
}

func (c *peerClient) get(ctx context.Context, addr string, refs []Ref) ([]Record, error) {
	var out recordsBody
	err := c.call(ctx, addr, http.MethodPost, internalapi.PathStoreGet, getRequest{Refs: refs}, &out)
	return out.Records, err
}

// FetchMembers asks the member whose internal API is at addr for its view
// of the cluster, over mutual TLS with the certificate derived from
// secret (with hc, if not nil, whose transport must present it: see
// internalapi.Transport). It is what `gearbox members` uses. A member
// with another secret gives ErrUnauthorized.
func FetchMembers(ctx context.Context, hc *http.Client, addr, secret string) (self string, members []Member, err error) {
	if hc == nil {
		tr := internalapi.Transport(secret)
		defer tr.CloseIdleConnections()
		hc = &http.Client{Transport: tr}
	}
	c := &peerClient{http: hc}
	var out membersResponse
	if err := c.call(ctx, addr, http.MethodGet, internalapi.PathMembers, nil, &out); err != nil {
		return "", nil, err
	}
	return out.Self, out.Members, nil
}
