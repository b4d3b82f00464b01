//go:build linux

package e2e

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"gearbox/internal/testutil"
)

// TestMembersOnOneHostFollowBind starts three node members on one host
// with only --bind apart, as an operator trying a cluster on one machine
// would: each listener follows --bind, so none collides on the node front's
// port 80 (before, the second member failed with "address already in
// use").
func TestMembersOnOneHostFollowBind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the node front's default port 80 needs root")
	}
	secret := randomSecret(t)
	ips := []string{"127.0.0.21", "127.0.0.22", "127.0.0.23"}
	var ms []*member
	for i, ip := range ips {
		name := fmt.Sprintf("b%d", i+1)
		args := []string{"--log-format", "json", "serve", "--role", "node", "--name", name, "--bind", ip,
			"--data-dir", gearDataDir(t),
			"--gear-uid-range", fmt.Sprintf("%d-%d", 61000+i*1000, 61999+i*1000)}
		if i > 0 {
			args = append(args, "--join", ips[0])
		}
		ms = append(ms, startMember(t, name, ip, secretEnv(secret), args...))
	}
	for i, m := range ms {
		front := net.JoinHostPort(ips[i], "80")
		testutil.WaitFor(t, 60*time.Second, m.name+"'s front listener on "+front, func() bool {
			if st, exited := m.wait(0); exited {
				t.Fatalf("%s exited (%v):\n%s", m.name, st, m.output.String())
			}
			c, err := net.DialTimeout("tcp", front, time.Second)
			if err != nil {
				return false
			}
			c.Close()
			return strings.Contains(m.output.String(), "member ready")
		}, func() string { return m.output.String() })
	}
}
