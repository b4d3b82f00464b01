// Package client speaks the broker's REST API: the CLI's client, usable by
// any Go program. Its calls answer with the API's wire types, defined in
// broker/api, which the broker sends. It imports only the standard library
// and broker/api.
package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"gearbox/broker/api"
)

// Client calls one broker. The zero value is not usable: set BaseURL.
type Client struct {
	// BaseURL is the broker, e.g. http://broker.example.com:7480.
	BaseURL string
	// User and Password authenticate with HTTP basic auth when Token is
	// empty.
	User, Password string
	// Token is an API token (from CreateToken); it takes precedence.
	Token string
	// HTTP is the HTTP client. Default: 60 s timeout.
	HTTP *http.Client
	// Insecure skips TLS certificate verification (self-signed brokers).
	Insecure bool
}

// Error is a broker's refusal: its HTTP status and messages.
type Error struct {
	StatusCode int
	Status     string
	Messages   []api.Message
}

func (e *Error) Error() string {
	var texts []string
	for _, m := range e.Messages {
		if m.Text != "" {
			texts = append(texts, m.Text)
		}
	}
	if len(texts) == 0 {
		return fmt.Sprintf("broker answered %d %s", e.StatusCode, e.Status)
	}
	return strings.Join(texts, " ")
}

// ExitCode is the broker's exit code for the refusal, at least 1.
func (e *Error) ExitCode() int {
	for _, m := range e.Messages {
		if m.ExitCode > 0 {
			return m.ExitCode
		}
	}
	return 1
}

// IsStatus reports whether err is a broker refusal with HTTP status code.
func IsStatus(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == code
}

// Do calls method on path (below BaseURL) with form parameters, decodes
// the envelope's data into out (when not nil) and returns the envelope's
// info messages.
func (c *Client) Do(ctx context.Context, method, path string, params url.Values, out any) ([]api.Message, error) {
	if c.BaseURL == "" {
		return nil, errors.New("no broker address: pass --api or set GEARBOX_API")
	}
	u := strings.TrimRight(c.BaseURL, "/") + path
	var body io.Reader
	if method == http.MethodGet && len(params) > 0 {
		u += "?" + params.Encode()
	} else if len(params) > 0 {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("broker request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return c.send(req, out)
}

// Upload POSTs body (of size bytes, -1 if unknown) with contentType to
// path and decodes the envelope's data into out.
func (c *Client) Upload(ctx context.Context, path, contentType string, body io.Reader, size int64, out any) ([]api.Message, error) {
	if c.BaseURL == "" {
		return nil, errors.New("no broker address: pass --api or set GEARBOX_API")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return nil, fmt.Errorf("broker request: %w", err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", contentType)
	return c.send(req, out)
}

// Stream GETs path (below BaseURL) with query parameters and returns the
// body of a successful answer as it arrives, for the caller to read and
// close; a refusal is an *Error as with Do. The request has no overall
// timeout, even when HTTP has one: it lasts until ctx ends or the broker
// ends the body.
func (c *Client) Stream(ctx context.Context, path string, params url.Values) (io.ReadCloser, error) {
	if c.BaseURL == "" {
		return nil, errors.New("no broker address: pass --api or set GEARBOX_API")
	}
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("broker request: %w", err)
	}
	req.Header.Set("Accept", "text/plain, application/json")
	c.authenticate(req)
	hc := *c.httpClient()
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the broker at %s: %w", c.BaseURL, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		_, _, err := readEnvelope(c.BaseURL, resp)
		return nil, err
	}
	return resp.Body, nil
}

// authenticate adds the client's credentials to req.
func (c *Client) authenticate(req *http.Request) {
	switch {
	case c.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Token)
	case c.User != "":
		req.SetBasicAuth(c.User, c.Password)
	}
}

// send authenticates req, sends it and reads the envelope.
func (c *Client) send(req *http.Request, out any) ([]api.Message, error) {
	req.Header.Set("Accept", "application/json")
	c.authenticate(req)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the broker at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	env, data, err := readEnvelope(c.BaseURL, resp)
	if err != nil {
		return nil, err
	}
	if out != nil && len(data) > 0 && string(data) != "null" {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("decode broker response: %w", err)
		}
	}
	return env.Messages, nil
}

// readEnvelope reads the envelope of resp from the broker at base, with
// its data left undecoded: a refusal (3xx and up) is an *Error.
func readEnvelope(base string, resp *http.Response) (api.Envelope, json.RawMessage, error) {
	var data json.RawMessage
	env := api.Envelope{Data: &data}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return env, nil, fmt.Errorf("read broker response: %w", err)
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return env, nil, fmt.Errorf("broker at %s answered %s with something other than the API's JSON", base, resp.Status)
	}
	if resp.StatusCode >= 300 {
		return env, nil, &Error{StatusCode: resp.StatusCode, Status: env.Status, Messages: env.Messages}
	}
	return env, data, nil
}

// httpClient returns c.HTTP, or a default client; it never writes c, so
// that one Client may serve several goroutines.
func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	if c.Insecure {
		return insecureClient
	}
	return defaultClient
}

var (
	defaultClient  = &http.Client{Timeout: 60 * time.Second}
	insecureClient = &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
)

// Texts joins the texts of messages, one per line.
func Texts(msgs []api.Message) string {
	var out []string
	for _, m := range msgs {
		if m.Text != "" {
			out = append(out, m.Text)
		}
	}
	return strings.Join(out, "\n")
}
