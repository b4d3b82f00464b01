package broker

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/internal/testutil"
	"gearbox/store"
	"gearbox/store/state"
)

// fastWebhooks makes webhook retries quick.
func fastWebhooks(cfg *Config) {
	cfg.WebhookBackoff = 5 * time.Millisecond
	cfg.WebhookMaxBackoff = 40 * time.Millisecond
	cfg.WebhookTimeout = 300 * time.Millisecond
}

// delivery is one request a receiver got.
type delivery struct {
	seq       uint64
	header    string // X-Gearbox-Event-Seq
	webhook   string // X-Gearbox-Webhook
	signature string
	body      []byte
	status    int
}

// receiver is a webhook endpoint that records what it gets. answer says
// how to answer the attempt-th request (0: the first) for an event: an
// HTTP status, or 0 to hang until the broker gives up.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	all      []delivery
	attempts map[uint64]int
	answer   func(seq uint64, attempt int) int
}

func newReceiver(t testing.TB) *receiver {
	rv := &receiver{attempts: map[uint64]int{}, answer: func(uint64, int) int { return http.StatusNoContent }}
	rv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var e api.RoutingEvent
		json.Unmarshal(body, &e)
		rv.mu.Lock()
		n := rv.attempts[e.Seq]
		rv.attempts[e.Seq]++
		code := rv.answer(e.Seq, n)
		rv.all = append(rv.all, delivery{seq: e.Seq, header: r.Header.Get(WebhookSeqHeader), webhook: r.Header.Get(WebhookIDHeader),
			signature: r.Header.Get(WebhookSignatureHeader), body: body, status: code})
		rv.mu.Unlock()
		if code == 0 {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rv.srv.Close)
	return rv
}

func (rv *receiver) setAnswer(f func(seq uint64, attempt int) int) {
	rv.mu.Lock()
	rv.answer = f
	rv.mu.Unlock()
}

// delivered lists the sequences answered 2xx to webhook id, in the order
// they came.
func (rv *receiver) delivered(id string) []uint64 {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	var out []uint64
	for _, d := range rv.all {
		if d.webhook == id && d.status/100 == 2 {
			out = append(out, d.seq)
		}
	}
	return out
}

// deliveries returns every request of webhook id.
func (rv *receiver) deliveries(id string) []delivery {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	var out []delivery
	for _, d := range rv.all {
		if d.webhook == id {
			out = append(out, d)
		}
	}
	return out
}

// span lists from..to.
func span(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// createWebhook creates a webhook as admin with parameters v.
func (c *testCluster) createWebhook(t testing.TB, v url.Values) api.Webhook {
	t.Helper()
	var h api.Webhook
	c.ok(t, "POST", "/broker/rest/routing/webhooks", admin, v, &h)
	return h
}

// webhook returns webhook id as listed.
func (c *testCluster) webhook(t testing.TB, id string) (api.Webhook, bool) {
	t.Helper()
	var hs []api.Webhook
	c.ok(t, "GET", "/broker/rest/routing/webhooks", admin, nil, &hs)
	for _, h := range hs {
		if h.ID == id {
			return h, true
		}
	}
	return api.Webhook{}, false
}

// waitDelivered waits until webhook id of rv got exactly want, in order.
func waitDelivered(t testing.TB, rv *receiver, id string, want []uint64) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("webhook %s to get events %v", id, want), func() bool {
		got := rv.delivered(id)
		if len(got) > len(want) || !slices.Equal(got, want[:len(got)]) {
			t.Fatalf("webhook %s got %v, want %v", id, got, want)
		}
		return len(got) == len(want)
	})
}

func TestWebhooks(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, cfg: fastWebhooks})
	c.domain(t, admin, "ns")
	c.createAppRecord(t, "ns", "web", adminLogin)
	c.churn(t, "ns", "web", 3)
	start := c.lastSeq(t)
	rv := newReceiver(t)

	h := c.createWebhook(t, url.Values{"url": {rv.srv.URL + "/new"}})
	if h.After != start || h.CreatedBy != adminLogin || len(h.Secret) != 64 || h.ID == "" {
		t.Fatalf("created %+v, want after %d, a creator and a secret", h, start)
	}
	old := c.createWebhook(t, url.Values{"url": {rv.srv.URL + "/old"}, "after": {"0"}})
	c.churn(t, "ns", "web", 6)
	last := c.lastSeq(t)
	waitDelivered(t, rv, h.ID, span(start+1, last))
	waitDelivered(t, rv, old.ID, span(1, last))

	for _, d := range rv.deliveries(h.ID) {
		var e api.RoutingEvent
		if err := json.Unmarshal(d.body, &e); err != nil || d.header != strconv.FormatUint(e.Seq, 10) {
			t.Errorf("delivery %s: header %s, body %s (%v)", d.header, d.header, d.body, err)
		}
		if want := WebhookSignature(h.Secret, d.body); d.signature != want {
			t.Errorf("delivery %d: signature %s, want %s", d.seq, d.signature, want)
		}
	}
	testutil.WaitFor(t, 5*time.Second, "progress recorded", func() bool {
		got, _ := c.webhook(t, h.ID)
		return got.After == last && got.Pending == 0 && got.LastError == ""
	})
	if got, _ := c.webhook(t, h.ID); got.Secret != "" || got.URL != rv.srv.URL+"/new" {
		t.Errorf("listed %+v: want the URL and no secret", got)
	}

	// Deleted: delivery stops.
	c.ok(t, "DELETE", "/broker/rest/routing/webhooks/"+h.ID, admin, nil, nil)
	c.churn(t, "ns", "web", 2)
	waitDelivered(t, rv, old.ID, span(1, last+2))
	if got := rv.delivered(h.ID); len(got) != int(last-start) {
		t.Errorf("deleted webhook got %d events, want %d", len(got), last-start)
	}
	if _, ok := c.webhook(t, h.ID); ok {
		t.Error("deleted webhook still listed")
	}
	if _, err := c.st.GetRecord(state.BucketWebhooks, h.ID); err == nil {
		t.Error("deleted webhook's record came back")
	}
}

func TestWebhookRefusals(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}})
	demo := c.user(t, "demo", nil)
	h := c.createWebhook(t, url.Values{"url": {"http://127.0.0.1:9/hook"}})
	const path = "/broker/rest/routing/webhooks"
	last := c.lastSeq(t)
	for _, tt := range []struct {
		name   string
		method string
		path   string
		who    creds
		body   url.Values
		code   int
		want   string
	}{
		{"no url", "POST", path, admin, url.Values{}, http.StatusUnprocessableEntity, "URL is required"},
		{"ftp", "POST", path, admin, url.Values{"url": {"ftp://example.org/x"}}, http.StatusUnprocessableEntity, "Invalid webhook URL"},
		{"relative", "POST", path, admin, url.Values{"url": {"/hook"}}, http.StatusUnprocessableEntity, "Invalid webhook URL"},
		{"no host", "POST", path, admin, url.Values{"url": {"http:///hook"}}, http.StatusUnprocessableEntity, "Invalid webhook URL"},
		{"twice", "POST", path, admin, url.Values{"url": {"http://127.0.0.1:9/hook"}}, http.StatusConflict, "already registered as webhook " + h.ID},
		{"after beyond", "POST", path, admin, url.Values{"url": {"http://127.0.0.1:9/x"}, "after": {strconv.FormatUint(last+1, 10)}}, http.StatusUnprocessableEntity, "Invalid after"},
		{"after bad", "POST", path, admin, url.Values{"url": {"http://127.0.0.1:9/x"}, "after": {"x"}}, http.StatusUnprocessableEntity, "Invalid value for after"},
		{"not an admin: add", "POST", path, demo, url.Values{"url": {"http://127.0.0.1:9/x"}}, http.StatusForbidden, "needs an administrator"},
		{"not an admin: list", "GET", path, demo, nil, http.StatusForbidden, "needs an administrator"},
		{"not an admin: delete", "DELETE", path + "/" + h.ID, demo, nil, http.StatusForbidden, "needs an administrator"},
		{"delete unknown", "DELETE", path + "/nope", admin, nil, http.StatusNotFound, "Webhook 'nope' not found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != nil {
				body = tt.body
			}
			wantErr(t, c.do(t, tt.method, tt.path, tt.who, body), tt.code, tt.want)
		})
	}
}

// TestWebhookRetries has a receiver refuse, time out and be down: every
// event still arrives once answered 2xx, in order, and the record says
// what went wrong meanwhile.
func TestWebhookRetries(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, cfg: fastWebhooks})
	c.domain(t, admin, "ns")
	c.createAppRecord(t, "ns", "web", adminLogin)
	rv := newReceiver(t)
	// Odd events fail twice (500, then a hang past the timeout), even
	// ones once.
	rv.setAnswer(func(seq uint64, attempt int) int {
		switch {
		case attempt == 0:
			return http.StatusInternalServerError
		case attempt == 1 && seq%2 == 1:
			return 0
		}
		return http.StatusOK
	})
	h := c.createWebhook(t, url.Values{"url": {rv.srv.URL}, "after": {"0"}})
	c.churn(t, "ns", "web", 8)
	last := c.lastSeq(t)
	waitDelivered(t, rv, h.ID, span(1, last))
	for _, d := range rv.deliveries(h.ID) {
		if d.seq > last {
			t.Errorf("delivery of unknown event %d", d.seq)
		}
	}
	rv.mu.Lock()
	for s := uint64(1); s <= last; s++ {
		if want := 2 + int(s%2); rv.attempts[s] != want {
			t.Errorf("event %d: %d attempts, want %d", s, rv.attempts[s], want)
		}
	}
	rv.mu.Unlock()

	// Down for a while: the record shows the error and no progress.
	rv.setAnswer(func(uint64, int) int { return http.StatusServiceUnavailable })
	c.churn(t, "ns", "web", 2)
	testutil.WaitFor(t, 5*time.Second, "the error recorded", func() bool {
		got, _ := c.webhook(t, h.ID)
		return strings.Contains(got.LastError, "503") && got.After == last && got.Pending == 2
	})
	rv.setAnswer(func(uint64, int) int { return http.StatusOK })
	waitDelivered(t, rv, h.ID, span(1, last+2))
	testutil.WaitFor(t, 5*time.Second, "the error cleared", func() bool {
		got, _ := c.webhook(t, h.ID)
		return got.LastError == "" && got.After == last+2
	})
}

// TestWebhookLeadership: only the broker leader delivers; a broker that
// stops leading stops delivering, and the next leader resumes from the
// progress recorded.
func TestWebhookLeadership(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: []nodeSpec{}, cfg: fastWebhooks})
	rv := newReceiver(t)
	h := c.createWebhook(t, url.Values{"url": {rv.srv.URL}})
	top := c.lastSeq(t)
	now := c.clock.Now()
	c.putEvent(t, top+1, now)
	waitDelivered(t, rv, h.ID, span(top+1, top+1))
	testutil.WaitFor(t, 5*time.Second, "progress recorded", func() bool {
		var got state.Webhook
		_, err := c.st.Get(state.BucketWebhooks, h.ID, &got)
		return err == nil && got.After == top+1
	})

	// A broker member with a lower name joins: it leads, b1 stops.
	a0 := startMember(t, "a0", []string{store.RoleBroker}, "", "")
	if _, err := a0.st.Join([]string{c.bm.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "a0 to lead", func() bool {
		l, ok := c.st.Leader()
		return ok && l.Name == "a0"
	})
	testutil.WaitFor(t, 10*time.Second, "b1 to stop delivering", func() bool { return c.b.deliverers.Load() == 0 })
	c.putEvent(t, top+2, now)
	c.putEvent(t, top+3, now)
	testutil.WaitFor(t, 5*time.Second, "the events at b1", func() bool { return c.b.feed.top.Load() == top+3 })
	if n := c.b.deliverers.Load(); n != 0 {
		t.Fatalf("%d deliverers run on a broker that does not lead", n)
	}
	if got := rv.delivered(h.ID); len(got) != 1 {
		t.Fatalf("a broker that does not lead delivered %v", got)
	}

	// a0 goes: b1 leads again and goes on from the recorded progress.
	if err := a0.st.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	a0.st.Close()
	waitDelivered(t, rv, h.ID, span(top+1, top+3))
}
