package lb

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

// Status is a snapshot of a pool, as the status page shows it.
type Status struct {
	Balance string `json:"balance"`
	// Rotation is RotationIn, RotationPending or RotationOut.
	Rotation string `json:"rotation"`
	// Sessions is the number of requests in flight (see Pool.Sessions).
	Sessions int64 `json:"sessions"`
	// Queued is the number of requests waiting for a place under MaxConns.
	Queued int64 `json:"queued"`
	// Requests counts the requests proxied or refused since New.
	Requests uint64 `json:"requests"`
	// Retries counts attempts after the first.
	Retries uint64 `json:"retries"`
	// NoBackend counts 503s for want of a backend.
	NoBackend uint64 `json:"no_backend"`
	// QueueTimeouts counts 503s for want of a place under MaxConns.
	QueueTimeouts uint64          `json:"queue_timeouts"`
	Backends      []BackendStatus `json:"backends"`
}

// BackendStatus is the state of one backend.
type BackendStatus struct {
	Backend
	// State is "up" or "down", as checks and failed connections decided.
	State string `json:"state"`
	// Since is when State last changed (or the backend was added), and
	// Why what changed it.
	Since time.Time `json:"since"`
	Why   string    `json:"why"`
	// Progress counts the checks towards the next change, as haproxy shows
	// it: "going down 1/2", "going up 2/3"; empty when there are none.
	Progress string `json:"progress,omitempty"`
	// Draining and RotatedOut say why an up backend may get no request.
	Draining   bool `json:"draining"`
	RotatedOut bool `json:"rotated_out"`
	// Serving says whether the backend gets new requests.
	Serving bool `json:"serving"`
	// LastCheck is the last active check; zero before the first.
	LastCheck CheckResult `json:"last_check"`
	Checks    uint64      `json:"checks"`
	// SessionsCurrent are the requests in flight, SessionsTotal all that
	// were sent, Errors the failed connections and responses.
	SessionsCurrent int64  `json:"sessions_current"`
	SessionsTotal   uint64 `json:"sessions_total"`
	Errors          uint64 `json:"errors"`
}

// Status returns a snapshot of the pool.
func (p *Pool) Status() Status {
	s := Status{
		Balance:       p.cfg.Balance,
		Rotation:      p.Rotation(),
		Sessions:      p.sessions.Load(),
		Queued:        p.queued.Load(),
		Requests:      p.requests.Load(),
		Retries:       p.retries.Load(),
		NoBackend:     p.noBackend.Load(),
		QueueTimeouts: p.queueTimeouts.Load(),
	}
	for _, b := range p.set.Load().list {
		bs := BackendStatus{
			Backend:         b.Backend,
			State:           "down",
			Draining:        b.draining.Load(),
			RotatedOut:      b.Local && p.localOut.Load(),
			Serving:         p.eligible(b),
			Checks:          b.checks.Load(),
			SessionsCurrent: b.inflight.Load(),
			SessionsTotal:   b.total.Load(),
			Errors:          b.errors.Load(),
		}
		b.mu.Lock()
		up := b.healthy.Load()
		bs.Since, bs.Why, bs.LastCheck = b.since, b.why, b.last
		switch {
		case up && b.failed > 0:
			bs.Progress = fmt.Sprintf("going down %d/%d", b.failed, p.cfg.Fall)
		case !up && b.passed > 0:
			bs.Progress = fmt.Sprintf("going up %d/%d", b.passed, p.cfg.Rise)
		}
		b.mu.Unlock()
		if up {
			bs.State = "up"
		}
		s.Backends = append(s.Backends, bs)
	}
	return s
}

// StatusHandler returns the status page as a handler of its own, for a
// caller that serves it elsewhere than at Config.StatusPath.
func (p *Pool) StatusHandler() http.Handler { return http.HandlerFunc(p.serveStatus) }

// serveStatus writes the status page: an HTML table, or JSON with
// ?format=json.
func (p *Pool) serveStatus(w http.ResponseWriter, r *http.Request) {
	s := p.Status()
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("format") == "json" {
		h.Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	statusPage.Execute(w, statusView{Status: s, Now: p.clock.Now()})
}

type statusView struct {
	Status
	Now time.Time
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Round(time.Millisecond).String() + " ago"
	},
	"ms": func(d time.Duration) string { return d.Round(10 * time.Microsecond).String() },
}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Load balancer status</title>
<style>
body{font-family:sans-serif;font-size:14px}
table{border-collapse:collapse}
th,td{border:1px solid #999;padding:2px 8px;text-align:left}
td.n{text-align:right}
tr.up{background:#cfc}tr.down{background:#fcc}tr.idle{background:#ffc}
</style></head><body>
<h1>Load balancer status</h1>
<p>balance {{.Balance}} &middot; local gear rotation {{.Rotation}} &middot; {{.Sessions}} sessions &middot; {{.Queued}} queued &middot;
{{.Requests}} requests &middot; {{.Retries}} retries &middot; {{.NoBackend}} without backend &middot; {{.QueueTimeouts}} queue timeouts</p>
<table>
<tr><th>id</th><th>address</th><th>state</th><th>since</th><th>last check</th><th>sessions cur</th><th>sessions total</th><th>errors</th><th>marks</th></tr>
{{- range .Backends}}
<tr class="{{if not .Serving}}{{if eq .State "up"}}idle{{else}}down{{end}}{{else}}up{{end}}">
<td>{{.ID}}</td><td>{{.Addr}}</td>
<td>{{.State}}{{with .Progress}} ({{.}}){{end}}</td>
<td>{{ago $.Now .Since}} ({{.Why}})</td>
<td>{{if .LastCheck.Time.IsZero}}none{{else}}{{if .LastCheck.OK}}passed{{else}}failed{{end}}: {{with .LastCheck.Status}}{{.}}{{else}}{{.LastCheck.Error}}{{end}} in {{ms .LastCheck.Duration}}, {{ago $.Now .LastCheck.Time}}{{end}}</td>
<td class="n">{{.SessionsCurrent}}</td><td class="n">{{.SessionsTotal}}</td><td class="n">{{.Errors}}</td>
<td>{{if .Local}}local {{end}}{{if .RotatedOut}}rotated-out {{end}}{{if .Draining}}draining{{end}}</td>
</tr>
{{- else}}
<tr><td colspan="9">no backend</td></tr>
{{- end}}
</table>
</body></html>
`))
