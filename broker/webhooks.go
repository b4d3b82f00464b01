package broker

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"gearbox/broker/api"
	"gearbox/store"
	"gearbox/store/state"
)

// Webhooks: URLs that receive every routing event (or, with
// feed=alerts, every alert) by POST. The broker
// leader delivers them: one goroutine per webhook POSTs the events one at
// a time, in sequence order, each until the receiver answers 2xx; any
// other answer, or none within WebhookTimeout, is retried after a backoff
// (WebhookBackoff doubling to WebhookMaxBackoff, jittered), for ever: an
// event is never skipped (only a gap in the feed itself is, see feed.go).
// A webhook that stays down holds back its own queue only; the others go
// on. The leader records in the webhook's record the last event delivered
// (After, once per batch of events) and the last error, so that admins
// see progress and a new leader resumes from After. Delivery is so at
// least once: a leader that stops (or loses its leadership) between a
// delivery and the record of it has the next leader deliver the event
// again, as do two leaders in a partition. Receivers that must not act
// twice deduplicate by X-Gearbox-Event-Seq.
//
// Each request carries the event as its JSON body, and headers
// X-Gearbox-Event-Seq (the event's sequence), X-Gearbox-Webhook (the
// webhook's id) and X-Gearbox-Signature: sha256=HEX, the HMAC-SHA256 of
// the body keyed with the webhook's secret, shown once when the webhook
// is created (as GitHub's webhooks do).

// Defaults of the webhook Config fields.
const (
	DefaultWebhookTimeout    = 10 * time.Second
	DefaultWebhookBackoff    = time.Second
	DefaultWebhookMaxBackoff = time.Minute
)

// MaxWebhooks is how many webhooks a cluster may have.
const MaxWebhooks = 100

// Webhook request headers.
const (
	WebhookSeqHeader       = "X-Gearbox-Event-Seq"
	WebhookIDHeader        = "X-Gearbox-Webhook"
	WebhookSignatureHeader = "X-Gearbox-Signature"
)

// WebhookSignature returns the X-Gearbox-Signature of body for a webhook
// with secret: "sha256=" and the hex HMAC-SHA256 of body keyed with it.
func WebhookSignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// webhookView is webhook h as the API shows it, with the events pending
// at this broker.
func (b *Broker) webhookView(h *state.Webhook) api.Webhook {
	v := api.Webhook{ID: h.ID, URL: h.URL, Feed: h.FeedName(), CreatedBy: h.CreatedBy, CreatedAt: h.CreatedAt, After: h.After, LastError: h.LastError}
	if top := b.webhookFeed(h).hub.top.Load(); top > h.After {
		v.Pending = top - h.After
	}
	return v
}

// GET /broker/rest/routing/webhooks (admin)
func (b *Broker) listWebhooks(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if err := requireAdmin(u); err != nil {
		return err
	}
	hs, err := list[state.Webhook](b.st, state.BucketWebhooks)
	if err != nil {
		return err
	}
	out := make([]api.Webhook, 0, len(hs))
	for i := range hs {
		out = append(out, b.webhookView(&hs[i]))
	}
	reply(w, http.StatusOK, "webhooks", out)
	return nil
}

// webhookFeed is the feed webhook h receives.
func (b *Broker) webhookFeed(h *state.Webhook) feed {
	if h.Feed == state.FeedAlerts {
		return b.alertFeed()
	}
	return b.routingFeed()
}

// POST /broker/rest/routing/webhooks (admin): url=, feed= routing (the
// default) or alerts, and after= the sequence to deliver from (default:
// the last entry now, so that only new ones go).
func (b *Broker) createWebhook(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if err := requireAdmin(u); err != nil {
		return err
	}
	raw := p.str("url")
	if raw == "" {
		return fieldErr("url", 1, "URL is required: pass url=http(s)://HOST/PATH.")
	}
	target, err := url.Parse(raw)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" || len(raw) > 2048 {
		return fieldErr("url", 1, "Invalid webhook URL '%s': use an absolute http:// or https:// URL of at most 2048 characters.", raw)
	}
	feedName := p.str("feed")
	switch feedName {
	case "", state.FeedRouting:
		feedName = ""
	case state.FeedAlerts:
	default:
		return fieldErr("feed", 1, "Invalid feed '%s': use routing (the default) or alerts.", feedName)
	}
	top, err := b.lastSeq()
	if feedName == state.FeedAlerts {
		top, err = b.lastAlertSeq()
	}
	if err != nil {
		return err
	}
	after := top
	if p.str("after") != "" {
		if after, err = p.seq("after"); err != nil {
			return err
		}
		if after > top {
			return fieldErr("after", 1, "Invalid after %d: the last entry of the feed is %d.", after, top)
		}
	}
	hs, err := list[state.Webhook](b.st, state.BucketWebhooks)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if h.URL == raw {
			return errorf(http.StatusConflict, 1, "The URL %s is already registered as webhook %s.", raw, h.ID)
		}
	}
	if len(hs) >= MaxWebhooks {
		return errorf(http.StatusUnprocessableEntity, 1, "The cluster already has %d webhooks, the most it may have.", MaxWebhooks)
	}
	h := state.Webhook{ID: randomID(6), URL: raw, Feed: feedName, CreatedBy: u.Login, CreatedAt: b.cfg.Now(), After: after, Secret: randomID(32)}
	if _, err := b.st.Put(r.Context(), state.BucketWebhooks, h.ID, h); err != nil {
		return err
	}
	b.log.Info().Str("webhook", h.ID).Str("url", h.URL).Str("feed", h.FeedName()).Uint64("after", after).Msg("webhook created")
	v := b.webhookView(&h)
	v.Secret = h.Secret
	what := "routing events"
	if h.Feed == state.FeedAlerts {
		what = "alerts"
	}
	reply(w, http.StatusCreated, "webhook", v, fmt.Sprintf("Webhook %s created; it receives the %s after %d. Its secret, which signs each delivery, is shown only now.", h.ID, what, after))
	return nil
}

// DELETE /broker/rest/routing/webhooks/{id} (admin): delivery stops.
func (b *Broker) deleteWebhook(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	if err := requireAdmin(u); err != nil {
		return err
	}
	id := r.PathValue("id")
	if _, err := b.st.GetRecord(state.BucketWebhooks, id); errors.Is(err, store.ErrNotFound) {
		return notFound("Webhook '%s' not found.", id)
	} else if err != nil {
		return err
	}
	if _, err := b.st.Delete(r.Context(), state.BucketWebhooks, id); err != nil {
		return err
	}
	b.log.Info().Str("webhook", id).Msg("webhook deleted")
	reply(w, http.StatusOK, "webhook", nil, fmt.Sprintf("Webhook %s deleted.", id))
	return nil
}

// deliverer is the goroutine delivering one webhook.
type deliverer struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (d *deliverer) stop() {
	d.cancel()
	<-d.done
}

// webhookLoop runs one deliverer per webhook while this member leads, and
// none otherwise: it follows the webhook records, membership changes,
// and looks again every second or so.
func (b *Broker) webhookLoop() {
	w := b.st.Watch(state.BucketWebhooks)
	defer w.Close()
	members := b.st.MemberChanges()
	running := map[string]*deliverer{}
	defer func() {
		for _, d := range running {
			d.stop()
		}
	}()
	for {
		if err := b.syncDeliverers(running); err != nil && b.ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
			b.log.Warn().Err(err).Msg("list webhooks failed")
		}
		select {
		case <-b.ctx.Done():
			return
		case <-w.C():
			w.Next()
		case <-members:
		case <-time.After(time.Second + rand.N(200*time.Millisecond)):
		}
	}
}

// syncDeliverers starts a deliverer for each webhook that has none (or
// whose deliverer ended) and stops those of deleted webhooks; all of them
// when this member does not lead.
func (b *Broker) syncDeliverers(running map[string]*deliverer) error {
	want := map[string]bool{}
	if b.isLeader() {
		hs, err := list[state.Webhook](b.st, state.BucketWebhooks)
		if err != nil {
			return err
		}
		for _, h := range hs {
			want[h.ID] = true
		}
	}
	for id, d := range running {
		ended := false
		select {
		case <-d.done:
			ended = true
		default:
		}
		if !want[id] || ended {
			d.stop()
			delete(running, id)
		}
	}
	for id := range want {
		if running[id] == nil {
			ctx, cancel := context.WithCancel(b.ctx)
			d := &deliverer{cancel: cancel, done: make(chan struct{})}
			running[id] = d
			b.deliverers.Add(1)
			go func() {
				defer close(d.done)
				defer b.deliverers.Add(-1)
				b.deliverWebhook(ctx, id)
			}()
		}
	}
	return nil
}

// errWebhookGone ends a deliverer whose webhook was deleted.
var errWebhookGone = errors.New("webhook deleted")

// deliverWebhook delivers the routing events to webhook id, from its
// record's After on, until ctx ends or the webhook is deleted.
func (b *Broker) deliverWebhook(ctx context.Context, id string) {
	log := b.log.With().Str("webhook", id).Logger()
	var h state.Webhook
	if _, err := b.st.Get(state.BucketWebhooks, id, &h); err != nil {
		return
	}
	after, lastErr := h.After, h.LastError
	f := b.webhookFeed(&h)
	var hold gapTimer
	defer hold.stop()
	for ctx.Err() == nil {
		wake := f.hub.changed()
		evs, wait, err := b.readFeed(f, after, feedBatch)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Str("feed", f.name).Msg("read feed failed")
			}
			return
		}
		saved := time.Now()
		for _, e := range evs {
			// A broker that lost the lead stops before the next event,
			// with its progress recorded, so that the new leader's
			// deliveries do not interleave with its own.
			if !b.isLeader() {
				b.saveWebhook(ctx, id, after, lastErr)
				return
			}
			if time.Since(saved) > time.Second {
				saved = time.Now()
				if err := b.saveWebhook(ctx, id, after, lastErr); errors.Is(err, errWebhookGone) {
					return
				}
			}
			for attempt := 0; ; attempt++ {
				err := b.postEvent(ctx, &h, e)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return
				}
				if attempt == 0 {
					log.Warn().Err(err).Uint64("seq", e.Seq).Msg("webhook delivery failed; retrying")
				}
				if msg := err.Error(); msg != lastErr {
					if err := b.saveWebhook(ctx, id, after, msg); errors.Is(err, errWebhookGone) {
						return
					} else if err == nil {
						lastErr = msg
					}
				}
				if !sleepCtx(ctx, b.webhookBackoff(attempt)) {
					return
				}
			}
			after = e.Seq
		}
		if len(evs) > 0 {
			lastErr = ""
			if err := b.saveWebhook(ctx, id, after, ""); errors.Is(err, errWebhookGone) {
				return
			} else if err != nil && ctx.Err() == nil {
				log.Warn().Err(err).Msg("record webhook progress failed")
			}
			continue
		}
		held := hold.after(wait)
		select {
		case <-ctx.Done():
		case <-wake:
		case <-held:
		}
	}
}

// webhookBackoff is the wait after the attempt-th failed delivery of an
// event (0: the first): WebhookBackoff doubling up to WebhookMaxBackoff,
// then a random half of it taken off, so that webhooks failing together
// do not retry together.
func (b *Broker) webhookBackoff(attempt int) time.Duration {
	d := b.cfg.WebhookBackoff
	for i := 0; i < attempt && d < b.cfg.WebhookMaxBackoff; i++ {
		d *= 2
	}
	d = min(d, b.cfg.WebhookMaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d, or less if ctx ends first; it reports whether d
// passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// postEvent delivers e to webhook h: nil when it answers 2xx.
func (b *Broker) postEvent(ctx context.Context, h *state.Webhook, e feedItem) error {
	body, err := json.Marshal(e.View)
	if err != nil {
		return fmt.Errorf("encode event %d: %w", e.Seq, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gearbox-webhook")
	req.Header.Set(WebhookSeqHeader, strconv.FormatUint(e.Seq, 10))
	req.Header.Set(WebhookIDHeader, h.ID)
	req.Header.Set(WebhookSignatureHeader, WebhookSignature(h.Secret, body))
	resp, err := b.cfg.WebhookClient.Do(req)
	if err != nil {
		return err
	}
	// Read a little of the answer, so that the connection can be kept.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s answered %s", h.URL, resp.Status)
	}
	return nil
}

// saveWebhook records webhook id's progress: after and the last error
// (empty: none). It writes nothing when neither changed, and nothing once
// this member does not lead; errWebhookGone when the webhook was deleted.
// It holds b.mu, as the API's mutations do, so that a delete cannot be
// overwritten by a progress record.
func (b *Broker) saveWebhook(ctx context.Context, id string, after uint64, lastErr string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var h state.Webhook
	if _, err := b.st.Get(state.BucketWebhooks, id, &h); errors.Is(err, store.ErrNotFound) {
		return errWebhookGone
	} else if err != nil {
		return err
	}
	if (h.After == after && h.LastError == lastErr) || !b.isLeader() {
		return nil
	}
	h.After, h.LastError = after, lastErr
	_, err := b.st.Put(ctx, state.BucketWebhooks, id, h)
	return err
}
