package dnsmgr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"gearbox/store"
	"gearbox/store/state"
)

// Server is the authoritative DNS server of the zone: it keeps a Table
// built from the store up to date and answers queries from it over UDP
// and TCP. Create it with New, then Start; Close stops it.
type Server struct {
	cfg    Config
	opts   Options
	log    zerolog.Logger
	allow  []netip.Prefix
	notify []netip.AddrPort
	// members returns the membership; the store's by default (tests
	// replace it).
	members func() []store.Member
	now     func() time.Time

	table   atomic.Pointer[Table]
	notifyC chan struct{} // signalled when the serial changes
	queries queryCounts   // answers by query type and code
	bufs    sync.Pool     // *[]byte for fast-path replies

	mu        sync.Mutex
	started   bool
	closed    bool
	udp       *net.UDPConn
	tcp       *dns.Server
	addr      string
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeErr  error
	panics    atomic.Int64
	lastPanic atomic.Int64 // unix nanos of the last panic logged
	// lastUDPError is when a UDP read or write error was last logged,
	// in unix nanos.
	lastUDPError atomic.Int64
	// refusals logs refused zone transfers, a burst at most a minute:
	// anyone may ask, and a scan must not flood the log.
	refusals zerolog.Logger
	refused  atomic.Int64 // zone transfers refused since New
	// rrl limits UDP responses per client prefix; nil: no limit.
	rrl *rateLimiter
	// limitLog logs rate-limited prefixes, a burst a minute.
	limitLog zerolog.Logger
	limited  atomic.Int64 // responses dropped or slipped since New
	// tcpRefusals logs TCP connections closed for being over the cap, a
	// burst a minute.
	tcpRefusals zerolog.Logger
}

// New checks cfg and returns a Server that is not started.
func New(cfg Config) (*Server, error) {
	allow, notify, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("dns config: %w", err)
	}
	opts, _ := cfg.options()
	s := &Server{cfg: cfg, opts: opts, allow: allow, notify: notify,
		log:     cfg.Logger.With().Str("component", "dns").Logger(),
		members: cfg.Store.Members, now: time.Now, notifyC: make(chan struct{}, 1)}
	s.refusals = s.log.Sample(&zerolog.BurstSampler{Burst: refusalLogBurst, Period: time.Minute})
	s.limitLog = s.log.Sample(&zerolog.BurstSampler{Burst: limitLogBurst, Period: time.Minute})
	s.tcpRefusals = s.log.Sample(&zerolog.BurstSampler{Burst: tcpRefusalLogBurst, Period: time.Minute})
	if cfg.RateLimit > 0 {
		s.rrl = newRateLimiter(cfg.RateLimit, cfg.RateBurst, cfg.RateSlip, rateTableSize, s.now())
	}
	s.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	return s, nil
}

// Start binds the UDP and TCP listeners, registers the server as a name
// server of the zone (state.BucketNameServers), builds the first table and
// serves. It returns once both listeners are bound and serving, or with
// the error that kept one from it.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.started:
		s.mu.Unlock()
		return ErrStarted
	}
	s.started = true
	s.mu.Unlock()
	// Watch before the first read, so that no change falls in between.
	watch := s.cfg.Store.Watch(watchedBuckets...)
	memberCh := s.cfg.Store.MemberChanges()
	pc, ln, err := listen(s.cfg.Addr)
	if err != nil {
		watch.Close()
		return err
	}
	// Only a server whose sockets are bound offers itself as a name
	// server of the zone (queries sent from now on wait in the sockets),
	// and it does so before its first table, which then lists it.
	if err := s.register(ctx, pc.LocalAddr().String()); err != nil {
		pc.Close()
		ln.Close()
		watch.Close()
		return err
	}
	if _, err := s.rebuild(); err != nil {
		s.unregister(ctx)
		pc.Close()
		ln.Close()
		watch.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		s.unregister(context.Background())
		pc.Close()
		ln.Close()
		watch.Close()
		return fmt.Errorf("start dns server: %w", ErrClosed)
	}
	s.addr = pc.LocalAddr().String()
	s.cancel = cancel
	s.udp = pc
	up := make(chan error, 2)
	limited := &limitListener{Listener: ln, max: int64(s.cfg.MaxTCPConns), timeout: s.cfg.TCPTimeout,
		onRefuse: func(n int64) {
			s.tcpRefusals.Warn().Int("max_tcp_conns", s.cfg.MaxTCPConns).Int64("refused", n).
				Msg("dns tcp connection refused: too many open")
		}}
	timeout := s.cfg.TCPTimeout
	s.tcp = &dns.Server{Listener: limited, Handler: handler{s, true}, MsgAcceptFunc: acceptAll,
		ReadTimeout: timeout, IdleTimeout: func() time.Duration { return timeout }, MaxTCPQueries: tcpMaxQueries,
		NotifyStartedFunc: func() { up <- nil }}
	s.wg.Go(func() {
		if err := s.tcp.ActivateAndServe(); err != nil {
			select {
			case up <- err:
			default:
			}
			if ctx.Err() == nil {
				s.log.Error().Err(err).Msg("dns tcp listener stopped")
			}
		}
	})
	for range udpReaders() {
		s.wg.Go(func() { s.serveUDP(pc) })
	}
	s.wg.Go(func() { defer watch.Close(); s.run(ctx, watch, memberCh) })
	s.wg.Go(func() { s.notifyLoop(ctx) })
	s.mu.Unlock()
	if err := <-up; err != nil {
		s.Close()
		return fmt.Errorf("serve dns on %s (tcp): %w", s.cfg.Addr, err)
	}
	t := s.table.Load()
	s.log.Info().Str("addr", s.addr).Str("zone", t.zone).Uint32("serial", t.serial).Int("names", len(t.names)).
		Bool("manage_ha_dns", s.opts.ManageHADNS).Str("router_hostname", s.opts.RouterHostname).
		Int("transfer_peers", len(s.allow)).Int("rate_limit", s.cfg.RateLimit).Int("max_tcp_conns", s.cfg.MaxTCPConns).
		Msg("dns serving")
	return nil
}

// listen binds UDP and TCP on the same address. With port 0 it takes the
// port the UDP bind got for TCP too, and tries again if TCP has it taken.
func listen(addr string) (*net.UDPConn, net.Listener, error) {
	host, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen for dns on %s (udp): %w%s", addr, err, bindHint(err))
		}
		pc := c.(*net.UDPConn)
		p := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || attempt >= 10 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("listen for dns on %s (tcp): %w%s", addr, err, bindHint(err))
		}
	}
}

func bindHint(err error) string {
	if errors.Is(err, syscall.EACCES) {
		return " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
	}
	return ""
}

// acceptAll lets every query that is not a response reach the handler,
// which answers malformed ones itself (FORMERR, NOTIMP) from the unpacked
// message; miekg/dns still answers those it cannot unpack with FORMERR.
func acceptAll(h dns.Header) dns.MsgAcceptAction {
	if h.Bits&(1<<15) != 0 { // QR: a response
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}

// Addr returns the address the server listens on (UDP and TCP), with the
// port chosen when Config.Addr had port 0; "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Table returns the table the server answers from now; nil before Start.
func (s *Server) Table() *Table { return s.table.Load() }

// Close stops serving and waits for the server's goroutines. It is safe to
// call twice; the second call returns the first one's error.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	cancel := s.cancel
	s.mu.Unlock()
	if cancel == nil {
		// Not started, or Start failed before serving.
		return nil
	}
	ctx, cancelWait := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelWait()
	var errs []error
	// Leave the NS set first: other brokers drop this server from their
	// next tables (resolvers may still hold it for the TTL).
	if err := s.unregister(ctx); err != nil {
		errs = append(errs, err)
	}
	cancel()
	if err := s.udp.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := s.tcp.ShutdownContext(ctx); err != nil && !isNotStarted(err) {
		errs = append(errs, err)
	}
	s.wg.Wait()
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("stop dns server: %w", err)
	}
	s.mu.Lock()
	s.closeErr = err
	s.mu.Unlock()
	s.log.Info().Msg("dns stopped")
	return err
}

// isNotStarted reports whether err is miekg/dns's answer to shutting down
// a server that failed to start.
func isNotStarted(err error) bool { return err != nil && err.Error() == "dns: server not started" }

// run rebuilds the table when the watched buckets or the membership
// change: changes are gathered for RebuildDelay, and rebuilds spaced by at
// least twice the time the last one took.
func (s *Server) run(ctx context.Context, watch *store.Watch, memberCh <-chan struct{}) {
	timer := time.NewTimer(0)
	if !timer.Stop() {
		<-timer.C
	}
	defer timer.Stop()
	var pending bool
	var took time.Duration
	next := time.Time{} // earliest start of the next rebuild
	schedule := func() {
		if pending {
			return
		}
		pending = true
		wait := s.cfg.RebuildDelay
		if d := time.Until(next); d > wait {
			wait = d
		}
		timer.Reset(wait)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-watch.C():
			if !ok {
				return
			}
			watch.Next()
			schedule()
		case <-memberCh:
			schedule()
		case <-timer.C:
			pending = false
			start := time.Now()
			changed, err := s.rebuild()
			took = time.Since(start)
			next = time.Now().Add(2 * took)
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Error().Err(err).Msg("zone rebuild failed")
				// Try again later: the store may be busy.
				next = time.Now().Add(time.Second)
				schedule()
			case changed:
				t := s.table.Load()
				s.log.Debug().Uint32("serial", t.serial).Int("names", len(t.names)).Dur("took", took).Msg("zone rebuilt")
			}
		}
	}
}

// rebuild reads the store, builds a table and, if its records differ
// from the current table's, publishes it with the next serial and asks for
// NOTIFY. It reports whether the table changed.
func (s *Server) rebuild() (bool, error) {
	in, skipped, err := readInputs(s.cfg.Store, s.members)
	if err != nil {
		return false, fmt.Errorf("read state for dns: %w", err)
	}
	if skipped > 0 {
		s.log.Warn().Int("records", skipped).Msg("records left out of the zone: they do not decode")
	}
	prev := s.table.Load()
	var serial uint32
	if prev != nil {
		serial = prev.serial
	}
	t := Build(in, s.opts, serial)
	if t.SameRecords(prev) {
		return false, nil
	}
	t.setSerial(NextSerial(serial, s.now()))
	if t.conflicts > 0 && (prev == nil || prev.conflicts != t.conflicts) {
		s.log.Warn().Int("names", t.conflicts).Msg("names wanted by two records, the first kept (name servers, apps, ha- names, gears)")
	}
	s.table.Store(t)
	select {
	case s.notifyC <- struct{}{}:
	default:
	}
	return true, nil
}

// handler answers queries for one transport.
type handler struct {
	s   *Server
	tcp bool
}

// ServeDNS answers req: zone transfers apart, from the table's cached
// wire replies when it can, else from Answer. UDP queries come from
// serveUDP with a *udpReply; TCP ones from miekg/dns's server.
func (h handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	defer h.recoverPanic(w, req)
	t := h.s.table.Load()
	if isTransfer(req) {
		h.s.transfer(w, req, t, h.tcp)
		return
	}
	var qtype uint16
	if len(req.Question) > 0 {
		qtype = req.Question[0].Qtype
	}
	if r, ok := w.(*udpReply); ok {
		// Straight into the batch's reply buffer.
		if b, ok := t.appendFast(r.buf[:0], req, h.tcp); ok {
			r.buf = b
			h.s.queries.count(qtype, int(b[3]&0x0f))
			return
		}
	} else if code, ok := h.serveFast(w, req, t); ok {
		h.s.queries.count(qtype, code)
		return
	}
	m := Answer(t, req)
	if m == nil {
		return
	}
	Fit(m, req, h.tcp)
	w.WriteMsg(m)
	h.s.queries.count(qtype, m.Rcode)
}

// serveFast writes the fast path's reply to req through a pooled buffer,
// and reports whether there was one, and its response code.
func (h handler) serveFast(w dns.ResponseWriter, req *dns.Msg, t *Table) (code int, ok bool) {
	bp := h.s.bufs.Get().(*[]byte)
	b, ok := t.appendFast((*bp)[:0], req, h.tcp)
	if ok {
		w.Write(b)
		code = int(b[3] & 0x0f)
	}
	if cap(b) <= 4096 {
		*bp = b[:0]
		h.s.bufs.Put(bp)
	}
	return code, ok
}

// recoverPanic turns a panic while answering into SERVFAIL and a log line
// (at most one a second), so that one bad query cannot stop the server.
func (h handler) recoverPanic(w dns.ResponseWriter, req *dns.Msg) {
	v := recover()
	if v == nil {
		return
	}
	n := h.s.panics.Add(1)
	now := time.Now().UnixNano()
	if last := h.s.lastPanic.Load(); now-last > int64(time.Second) && h.s.lastPanic.CompareAndSwap(last, now) {
		h.s.log.Error().Str("panic", fmt.Sprint(v)).Int64("panics", n).Msg("dns query failed")
	}
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	w.WriteMsg(m)
}

// registration is the server's name server record: its bound IP, or the
// advertised one when it listens on all addresses.
func (s *Server) registration(addr string) state.NameServer {
	host, port, _ := net.SplitHostPort(addr)
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.IsUnspecified() {
		host = s.advertised()
	}
	return state.NameServer{Name: s.cfg.Store.Name(), Addr: host, DNS: net.JoinHostPort(host, port), Since: s.now().UTC()}
}

// advertised is Config.AdvertiseAddr, or the address the store's local
// member advertises.
func (s *Server) advertised() string {
	if s.cfg.AdvertiseAddr != "" {
		return s.cfg.AdvertiseAddr
	}
	for _, m := range s.cfg.Store.Members() {
		if m.Name == s.cfg.Store.Name() {
			return m.Addr
		}
	}
	return ""
}

// register writes the record of the server bound to addr.
func (s *Server) register(ctx context.Context, addr string) error {
	ns := s.registration(addr)
	if _, err := s.cfg.Store.Put(ctx, state.BucketNameServers, ns.Name, ns); err != nil {
		return fmt.Errorf("register name server %s: %w", ns.Name, err)
	}
	return nil
}

// unregister deletes the server's name server record.
func (s *Server) unregister(ctx context.Context) error { return Unregister(ctx, s.cfg.Store) }

// Unregister deletes the name server record of st's member, if it has
// one: a broker that runs no DNS server calls it at start, so that a
// record left by an earlier run that did and then crashed (a crash skips
// Close) does not make it a name server. A store already closed is no
// error: the member is going, and others see it leave.
func Unregister(ctx context.Context, st *store.Store) error {
	name := st.Name()
	if _, err := st.GetRecord(state.BucketNameServers, name); errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if _, err := st.Delete(ctx, state.BucketNameServers, name); err != nil && !errors.Is(err, store.ErrClosed) {
		return fmt.Errorf("unregister name server %s: %w", name, err)
	}
	return nil
}
