//go:build linux

package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"gearbox/broker/client"
	"gearbox/node/services"
	"gearbox/store/state"
)

// cluster is one side of the comparison: three clustered NATS servers and
// the connections of the benchmark's clients, two per server (a producer's
// and a consumer's), all as one user of one account.
type cluster struct {
	name  string
	procs []*proc  // the server processes: gearbox members or nats-servers
	urls  []string // client URL of each server
	seed  []byte   // nkey seed of the user the clients connect as
	pub   []*nats.Conn
	sub   []*nats.Conn
}

// close closes the clients' connections.
func (c *cluster) close() {
	for _, nc := range append(c.pub, c.sub...) {
		nc.Close()
	}
	c.pub, c.sub = nil, nil
}

// connect opens a connection to url as the nkey user of seed, as a gear
// does with GEARBOX_NATS_NKEY_FILE.
func connect(url string, seed []byte, name string) (*nats.Conn, error) {
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("read nkey seed: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, nats.Nkey(pub, kp.Sign), nats.Name(name),
		nats.Timeout(5*time.Second), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	return nc, nil
}

// waitReady waits until every server of c takes the clients' connections
// and JetStream places a stream on three replicas, then opens c's
// connections.
func (c *cluster) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i, u := range c.urls {
		var pub, sub *nats.Conn
		err := poll(ctx, c.name+": connect to "+u, func() error {
			if err := c.alive(); err != nil {
				return err
			}
			var err error
			if pub, err = connect(u, c.seed, fmt.Sprintf("bench pub %d", i)); err != nil {
				return err
			}
			if sub, err = connect(u, c.seed, fmt.Sprintf("bench sub %d", i)); err != nil {
				pub.Close()
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
		c.pub, c.sub = append(c.pub, pub), append(c.sub, sub)
	}
	// JetStream answers once its metadata group has a leader; an R3
	// stream can be placed once all three servers are in it.
	return poll(ctx, c.name+": place an R3 stream", func() error {
		if err := c.alive(); err != nil {
			return err
		}
		for _, nc := range c.pub {
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = js.CreateOrUpdateStream(sctx, jetstream.StreamConfig{Name: "probe", Subjects: []string{"probe"},
				Storage: jetstream.FileStorage, Replicas: 3})
			if err == nil {
				err = js.DeleteStream(sctx, "probe")
			}
			scancel()
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// alive returns an error if a server of c exited.
func (c *cluster) alive() error {
	for _, p := range c.procs {
		if err := p.alive(); err != nil {
			return err
		}
	}
	return nil
}

// poll calls f every 200 ms until it succeeds; when ctx ends first it
// returns f's last error, saying what it waited for.
func poll(ctx context.Context, what string, f func() error) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		if strings.Contains(err.Error(), "exited") {
			return fmt.Errorf("%s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: gave up: %w", what, err)
		case <-t.C:
		}
	}
}

// --- gearbox ------------------------------------------------------------

// The benchmark's admin on the gearbox clusters, given to brokers in
// GEARBOX_BOOTSTRAP_ADMIN (secrets never go in argv).
const (
	adminLogin    = "admin"
	adminPassword = "bench-password-1"
)

// gbMember is one gearbox member to start.
type gbMember struct {
	name, ip, role string
	args           []string // flags beyond the common ones
}

// dataDir is the member's --data-dir under work.
func (m gbMember) dataDir(work string) string { return filepath.Join(work, m.name) }

// writeSecret writes a new cluster secret to work/cluster-secret, mode
// 0600, and returns it and the file's path.
func writeSecret(work string) (string, string, error) {
	b := make([]byte, 32)
	rand.Read(b)
	secret := fmt.Sprintf("%x", b)
	path := filepath.Join(work, "cluster-secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write cluster secret: %w", err)
	}
	return secret, path, nil
}

// startGearbox starts ms as separate `gearbox serve` processes with the
// cluster secret in secretFile, every member after the first joining the
// first. Gears run unisolated (one user, no root needed), brokers run no
// DNS server, and every member logs at its default level (info: the
// embedded NATS server's notices are debug and are dropped).
func startGearbox(ps *procs, bin, work, secretFile string, ms []gbMember) ([]*proc, error) {
	var addrs []string
	for _, m := range ms {
		for _, port := range []string{"7946", "7947", "7480", "80", "4222", "6222"} {
			addrs = append(addrs, net.JoinHostPort(m.ip, port))
		}
	}
	if err := portsFree(addrs...); err != nil {
		return nil, err
	}
	var out []*proc
	for i, m := range ms {
		args := []string{"serve", "--name", m.name, "--role", m.role, "--bind", m.ip, "--data-dir", m.dataDir(work),
			"--cluster-secret-file", secretFile, "--gear-isolation", "none", "--dns-addr", "", "--leave-timeout", "5s"}
		if i > 0 {
			args = append(args, "--join", ms[0].ip)
		}
		args = append(args, m.args...)
		env := []string{"GEARBOX_BOOTSTRAP_ADMIN=" + adminLogin + ":" + adminPassword, "GEARBOX_LOG_FORMAT=json"}
		p, err := ps.start(m.name, filepath.Join(work, m.name+".log"), env, bin, args...)
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

// brokerClient returns a REST API client of the broker on ip, as the
// benchmark's admin.
func brokerClient(ip string) *client.Client {
	return &client.Client{BaseURL: "http://" + net.JoinHostPort(ip, "7480"), User: adminLogin, Password: adminPassword}
}

// waitNodes waits until the broker c answers and lists n alive nodes.
func waitNodes(ctx context.Context, c *client.Client, n int, members []*proc) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return poll(ctx, fmt.Sprintf("broker %s lists %d alive nodes", c.BaseURL, n), func() error {
		for _, p := range members {
			if err := p.alive(); err != nil {
				return err
			}
		}
		nodes, err := c.Nodes(ctx)
		if err != nil {
			return err
		}
		alive := 0
		for _, nd := range nodes {
			if nd.Alive {
				alive++
			}
		}
		if alive != n {
			return fmt.Errorf("%d alive nodes", alive)
		}
		return nil
	})
}

// waitNoWitness waits until no member under work runs a witness beside
// its NATS server (see node/services/witness.go): the founder retires it
// once three nodes are current in JetStream's metadata group.
func waitNoWitness(ctx context.Context, work string, ms []gbMember) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return poll(ctx, "the founding node retires its witness", func() error {
		for _, m := range ms {
			if _, err := os.Stat(filepath.Join(m.dataDir(work), "nats", "witness", "active")); err == nil {
				return fmt.Errorf("%s still runs a witness", m.name)
			}
		}
		return nil
	})
}

// createApp creates app name in namespace ns through the broker c, a
// small static app of one gear (the cheapest there is: its welcome page
// is served from inside its node), and returns its id.
func createApp(ctx context.Context, c *client.Client, ns, name string) (string, error) {
	a, _, err := c.CreateApp(ctx, ns, name, client.AppOptions{})
	if err != nil {
		return "", fmt.Errorf("create app %s: %w", name, err)
	}
	if a.ID == "" {
		return "", fmt.Errorf("create app %s: the broker's answer has no id", name)
	}
	return a.ID, nil
}

// startEmbedded starts side A: three `gearbox serve --role broker,node`
// members on ips, an app created through the first one's broker, and
// the app's NATS user, whose seed is derived from the cluster secret as
// the node derives the one its gears get.
func startEmbedded(ctx context.Context, ps *procs, bin, work string, ips []string) (*cluster, error) {
	dir := filepath.Join(work, "embedded")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	secret, secretFile, err := writeSecret(dir)
	if err != nil {
		return nil, err
	}
	var ms []gbMember
	for i, ip := range ips {
		ms = append(ms, gbMember{name: fmt.Sprintf("gb%d", i+1), ip: ip, role: "broker,node"})
	}
	c := &cluster{name: "embedded"}
	c.procs, err = startGearbox(ps, bin, dir, secretFile, ms)
	if err != nil {
		return nil, err
	}
	bc := brokerClient(ips[0])
	if err := waitNodes(ctx, bc, len(ms), c.procs); err != nil {
		return nil, err
	}
	if _, _, err := bc.CreateDomain(ctx, "bench"); err != nil {
		return nil, fmt.Errorf("create domain bench: %w", err)
	}
	id, err := createApp(ctx, bc, "bench", "queue")
	if err != nil {
		return nil, err
	}
	if c.seed, err = services.AppSeed(secret, id); err != nil {
		return nil, err
	}
	for _, ip := range ips {
		c.urls = append(c.urls, "nats://"+net.JoinHostPort(ip, "4222"))
	}
	if err := waitNoWitness(ctx, dir, ms); err != nil {
		return nil, err
	}
	logf("%s: app bench/queue has id %s, NATS account %s", c.name, id, services.AccountName(id))
	return c, c.waitReady(ctx, 90*time.Second)
}

// --- standalone nats-server ------------------------------------------------

// account is an account of a standalone server's configuration.
type account struct {
	name   string
	seed   []byte
	limits *services.Limits // nil: no JetStream
}

// newAccount returns an account with a new nkey user.
func newAccount(name string, limits *services.Limits) (account, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return account{}, err
	}
	seed, err := kp.Seed()
	if err != nil {
		return account{}, err
	}
	return account{name: name, seed: seed, limits: limits}, nil
}

// standaloneAccounts returns the accounts a gearbox node's server has, in
// the same shape (see node/services/accounts.go): the system account, a
// platform account with JetStream, and apps accounts with the JetStream
// limits of small gears, apps of them.
func standaloneAccounts(apps int) ([]account, error) {
	small := services.LimitsFor(state.SizeSmall)
	var out []account
	for i := range apps + 2 {
		name, limits := fmt.Sprintf("app-%d", i-1), &small
		switch i {
		case 0:
			name, limits = "SYS", nil
		case 1:
			name, limits = "PLATFORM", &services.Limits{}
		}
		a, err := newAccount(name, limits)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// renderAccounts writes accs as a server configuration's accounts, as
// gearbox's node does.
func renderAccounts(accs []account) (string, error) {
	var b strings.Builder
	b.WriteString("system_account: SYS\naccounts: {\n")
	for _, a := range accs {
		kp, err := nkeys.FromSeed(a.seed)
		if err != nil {
			return "", err
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return "", err
		}
		switch l := a.limits; {
		case l == nil:
			fmt.Fprintf(&b, "  %s: { users: [ { nkey: %s } ] }\n", a.name, pub)
		case *l == services.Limits{}:
			fmt.Fprintf(&b, "  %s: { jetstream: enabled, users: [ { nkey: %s } ] }\n", a.name, pub)
		default:
			fmt.Fprintf(&b, "  %q: { jetstream: { max_mem: %d, max_file: %d, max_streams: %d, max_consumers: %d }, users: [ { nkey: %s } ] }\n",
				a.name, l.MaxMemory, l.MaxStore, l.MaxStreams, l.MaxConsumers, pub)
		}
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// standaloneConfig is the configuration of server i of ips: the options
// gearbox's node gives its embedded server (node/services/server.go:
// client and cluster listeners on the address, advertised, a node tag
// and JetStream's unique tag, 4096 connections at most, NATS's defaults
// for the rest), with mutual TLS on the routes when tlsDir is not empty.
func standaloneConfig(i int, ips []string, dir, tlsDir, accounts string) string {
	var routes []string
	for j, ip := range ips {
		if j != i {
			routes = append(routes, "nats-route://"+net.JoinHostPort(ip, "6222"))
		}
	}
	name := fmt.Sprintf("nats%d", i+1)
	tlsBlock := ""
	if tlsDir != "" {
		cert, key := filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem")
		tlsBlock = fmt.Sprintf("  tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true, timeout: 5, min_version: \"1.3\" }\n",
			cert, key, cert)
	}
	return fmt.Sprintf(`server_name: %s
host: %s
port: 4222
max_connections: 4096
server_tags: ["node:%s"]
jetstream {
  store_dir: %q
  unique_tag: "node:"
}
cluster {
  name: bench
  host: %s
  port: 6222
  advertise: %q
  routes: [ %s ]
%s}
%s`, name, ips[i], name, filepath.Join(dir, name), ips[i], net.JoinHostPort(ips[i], "6222"),
		strings.Join(routes, ", "), tlsBlock, accounts)
}

// writeCert writes a self-signed ed25519 certificate for ips and its key
// to dir/cert.pem and dir/key.pem: each server presents it and trusts it
// alone, as gearbox's route TLS does with the certificate derived from
// the cluster secret (internalapi.PeerTLS: ed25519, TLS 1.3, client
// certificates required).
func writeCert(dir string, ips []string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nats bench"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// startStandaloneServers starts one nats-server per ip, clustered, with
// accs, under work/name; with withTLS their routes run over mutual TLS.
// It returns the processes and the path of each one's configuration.
func startStandaloneServers(ps *procs, bin, work, name string, ips []string, withTLS bool, accs []account) ([]*proc, []string, error) {
	dir := filepath.Join(work, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	var addrs []string
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip, "4222"), net.JoinHostPort(ip, "6222"))
	}
	if err := portsFree(addrs...); err != nil {
		return nil, nil, err
	}
	tlsDir := ""
	if withTLS {
		tlsDir = dir
		if err := writeCert(dir, ips); err != nil {
			return nil, nil, fmt.Errorf("write route certificate: %w", err)
		}
	}
	conf, err := renderAccounts(accs)
	if err != nil {
		return nil, nil, err
	}
	var out []*proc
	var confs []string
	for i := range ips {
		path := filepath.Join(dir, fmt.Sprintf("nats%d.conf", i+1))
		if err := os.WriteFile(path, []byte(standaloneConfig(i, ips, dir, tlsDir, conf)), 0o600); err != nil {
			return out, confs, err
		}
		p, err := ps.start(fmt.Sprintf("%s-nats%d", name, i+1), filepath.Join(dir, fmt.Sprintf("nats%d.log", i+1)), nil, bin, "-c", path)
		if err != nil {
			return out, confs, err
		}
		out, confs = append(out, p), append(confs, path)
	}
	return out, confs, nil
}

// startStandalone starts side B (or C, withTLS): three standalone
// nats-servers on ips with the accounts of a gearbox node that has one
// app, the clients connecting as that app's nkey user.
func startStandalone(ctx context.Context, ps *procs, bin, work, name string, ips []string, withTLS bool) (*cluster, error) {
	accs, err := standaloneAccounts(1)
	if err != nil {
		return nil, err
	}
	c := &cluster{name: name, seed: accs[2].seed}
	if c.procs, _, err = startStandaloneServers(ps, bin, work, name, ips, withTLS, accs); err != nil {
		return nil, err
	}
	for _, ip := range ips {
		c.urls = append(c.urls, "nats://"+net.JoinHostPort(ip, "4222"))
	}
	return c, c.waitReady(ctx, 60*time.Second)
}
