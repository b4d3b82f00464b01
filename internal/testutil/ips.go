package testutil

import (
	"fmt"
	"sync"
)

// IPs hands out 127.0.B.x addresses, one per in-process member, so that a
// test never meets a port that an earlier test's member may still hold.
// Each package's tests use a block B of their own, so that test binaries
// that go test runs in parallel never share an address:
//
//	store 0 (from .21, on random ports; the end-to-end tests use .1,
//	.11-.16 and .41-.46 on fixed ports)
//	broker 1, node 2, dnsmgr 3, router 4, internal/member 5,
//	integration 6
//
// The zero value is not usable: make one with NewIPs. It is safe for
// concurrent use.
type IPs struct {
	mu         sync.Mutex
	block      int
	first, cur int
}

// NewIPs returns the addresses of block b (0-255), starting at 127.0.b.first
// and wrapping back to it after 127.0.b.250.
func NewIPs(b, first int) *IPs {
	return &IPs{block: b, first: first, cur: first - 1}
}

// Next returns the next address of the block.
func (p *IPs) Next() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur++
	if p.cur > 250 {
		p.cur = p.first
	}
	return fmt.Sprintf("127.0.%d.%d", p.block, p.cur)
}
