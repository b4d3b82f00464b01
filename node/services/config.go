package services

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"

	"gearbox/store"
)

// Default ports of a node's NATS server.
const (
	DefaultClientPort  = 4222
	DefaultClusterPort = 6222
)

// Config configures a node's cluster services.
type Config struct {
	// Store is the member's replicated store: node records say where the
	// other nodes' NATS servers are, app records which accounts to keep.
	// Required.
	Store *store.Store
	// DataDir holds JetStream's files (DataDir/jetstream), the accounts
	// file and the witness's files. Required; created 0700.
	DataDir string
	// Host is the address the client and cluster listeners bind to and
	// that gears and other nodes reach them at. Required: a specific
	// address (the member's --bind, else its advertise address).
	Host string
	// ClientPort is the port gears connect to. Default 4222.
	ClientPort int
	// ClusterPort is the port of the routes between nodes. Default 6222.
	ClusterPort int
	// Secret is the cluster secret. Routes between nodes run over mutual
	// TLS with the key derived from it (as the internal API does), and
	// the accounts' nkeys are derived from it. An empty secret is for
	// tests only.
	Secret string
	// Settle is how long a node with no JetStream state yet looks for
	// other nodes before it founds a cluster on its own. Default 3 s.
	Settle time.Duration
	// MaxMemory and MaxStore cap what JetStream keeps in memory and on
	// disk on this node, in bytes, for all apps. Default 0: NATS's own
	// (75 % of the memory, 1 TB of disk).
	MaxMemory, MaxStore int64
	// Logger receives the component's logs (component=services) and the
	// NATS server's warnings and errors; its notices are logged at
	// debug level.
	Logger zerolog.Logger
}

// DefaultConfig returns the configuration of a node member's services
// for st, on host with the default ports.
func DefaultConfig(st *store.Store, dataDir, host, secret string) Config {
	return Config{
		Store: st, DataDir: dataDir, Host: host, Secret: secret,
		ClientPort: DefaultClientPort, ClusterPort: DefaultClusterPort,
		Settle: 3 * time.Second, Logger: zerolog.Nop(),
	}
}

// FastConfig is DefaultConfig with a short settle time, for tests.
func FastConfig(st *store.Store, dataDir, host, secret string) Config {
	c := DefaultConfig(st, dataDir, host, secret)
	c.Settle = 500 * time.Millisecond
	return c
}

func (c *Config) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("services config: Store is required")
	case c.DataDir == "":
		return errors.New("services config: DataDir is required")
	case c.Host == "":
		return errors.New("services config: Host is required")
	}
	if ip := net.ParseIP(c.Host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("services config: Host %s: want the address other nodes reach this one at, not a wildcard", c.Host)
	}
	if c.ClientPort == 0 {
		c.ClientPort = DefaultClientPort
	}
	if c.ClusterPort == 0 {
		c.ClusterPort = DefaultClusterPort
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"ClientPort", c.ClientPort}, {"ClusterPort", c.ClusterPort}} {
		if p.v < 1 || p.v > 65535 {
			return fmt.Errorf("services config: %s %d is not within 1-65535", p.name, p.v)
		}
	}
	if c.ClientPort == c.ClusterPort {
		return fmt.Errorf("services config: ClientPort and ClusterPort are both %d", c.ClientPort)
	}
	if c.Settle <= 0 {
		c.Settle = 3 * time.Second
	}
	if c.MaxMemory < 0 || c.MaxStore < 0 {
		return errors.New("services config: MaxMemory and MaxStore must not be negative")
	}
	return nil
}

// ClusterAddr returns host:port of the cluster listener, as the node's
// record announces it.
func (c *Config) ClusterAddr() string {
	return net.JoinHostPort(c.Host, fmt.Sprint(c.ClusterPort))
}

// ClientURL returns the URL gears connect to.
func (c *Config) ClientURL() string {
	return "nats://" + net.JoinHostPort(c.Host, fmt.Sprint(c.ClientPort))
}
