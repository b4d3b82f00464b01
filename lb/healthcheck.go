package lb

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// runChecks runs a round of checks at once, then one every HealthInterval
// (less a random tenth at most), and one soon after SetBackends adds a
// backend, until ctx is done.
func (p *Pool) runChecks(ctx context.Context) {
	t := p.clock.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		case <-p.kick:
			if !t.Stop() {
				// Drain a firing that raced with the kick, so that the
				// Reset below is the only pending one.
				select {
				case <-t.C():
				default:
				}
			}
		}
		start := p.clock.Now()
		p.checkOnce(ctx)
		wait := p.cfg.HealthInterval - rand.N(p.cfg.HealthInterval/10+1) - p.clock.Now().Sub(start)
		t.Reset(max(wait, 0))
	}
}

// checkOnce checks every backend once, in parallel, and applies the
// results. Tests call it to drive checks without a loop. A rotated-out
// local backend is not checked (as HAProxy does not check a server in
// maintenance, so that its health checks leave its log); it keeps its
// last state, and is checked again as soon as it rotates back in.
func (p *Pool) checkOnce(ctx context.Context) {
	var wg sync.WaitGroup
	localOut := p.localOut.Load()
	for _, b := range p.set.Load().list {
		if b.Local && localOut {
			continue
		}
		wg.Go(func() { p.checkBackend(ctx, b) })
	}
	wg.Wait()
	if ctx.Err() == nil {
		p.checkRotationDeadline()
	}
}

// checkBackend GETs b's health path and applies the result, unless ctx
// ended meanwhile (the pool is closing: the failure says nothing of b).
func (p *Pool) checkBackend(ctx context.Context, b *backend) {
	res := p.probe(ctx, b)
	if ctx.Err() != nil {
		return
	}
	rise := p.cfg.Rise
	if b.fastRise.Load() {
		rise = 1
	}
	switch b.record(res, rise, p.cfg.Fall) {
	case wentUp:
		b.fastRise.Store(false)
		p.log.Info().Str("backend", b.ID).Str("addr", b.Addr).Int("status", res.Status).Bool("ready", rise == 1).Msg("backend up")
		p.updateRotation()
	case wentDown:
		p.log.Warn().Str("backend", b.ID).Str("addr", b.Addr).Int("status", res.Status).
			Str("error", res.Error).Msg("backend down")
	}
}

// probe does one check of b.
func (p *Pool) probe(ctx context.Context, b *backend) CheckResult {
	res := CheckResult{Time: p.clock.Now()}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HealthTimeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.checkURL, nil)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	if p.cfg.HealthHost != "" {
		req.Host = p.cfg.HealthHost
	}
	req.Header.Set("User-Agent", "gearbox-lb-check")
	resp, err := p.checker.Do(req)
	res.Duration = time.Since(start)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			res.Error = "timeout after " + p.cfg.HealthTimeout.String()
		} else {
			res.Error = err.Error()
		}
		return res
	}
	// Read a little so that a small answer ends cleanly; the connection is
	// not reused anyway.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	res.Status = resp.StatusCode
	res.OK = p.expect(resp.StatusCode)
	return res
}
