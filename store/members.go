package store

import (
	"io"
	"log"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/serf/serf"
	"github.com/rs/zerolog"
)

// Member statuses, as reported by serf.
const (
	StatusAlive   = "alive"
	StatusLeaving = "leaving"
	StatusLeft    = "left"
	StatusFailed  = "failed"
)

// Role names advertised in the roles tag.
const (
	RoleBroker = "broker"
	RoleNode   = "node"
	RoleRouter = "router"
)

// Serf tag names.
const (
	tagRoles    = "roles"
	tagZone     = "zone"
	tagRegion   = "region"
	tagInternal = "int"
)

// Member is one gearbox member as this member sees it.
type Member struct {
	Name string `json:"name"`
	// Addr is the member's advertised IP; Port its gossip port.
	Addr string `json:"addr"`
	Port int    `json:"port"`
	// InternalAddr is host:port of the member's internal API.
	InternalAddr string   `json:"internal_addr"`
	Roles        []string `json:"roles"`
	Zone         string   `json:"zone,omitempty"`
	Region       string   `json:"region,omitempty"`
	// Status is alive, leaving, left or failed.
	Status string `json:"status"`
	// Leader is set on the broker leader.
	Leader bool `json:"leader,omitempty"`
}

// HasRole reports whether m runs role.
func (m Member) HasRole(role string) bool {
	for _, r := range m.Roles {
		if r == role {
			return true
		}
	}
	return false
}

func memberFromSerf(sm serf.Member) Member {
	m := Member{
		Name:         sm.Name,
		Addr:         sm.Addr.String(),
		Port:         int(sm.Port),
		InternalAddr: sm.Tags[tagInternal],
		Zone:         sm.Tags[tagZone],
		Region:       sm.Tags[tagRegion],
	}
	if r := sm.Tags[tagRoles]; r != "" {
		m.Roles = strings.Split(r, ",")
	}
	switch sm.Status {
	case serf.StatusAlive:
		m.Status = StatusAlive
	case serf.StatusLeaving:
		m.Status = StatusLeaving
	case serf.StatusLeft:
		m.Status = StatusLeft
	default:
		m.Status = StatusFailed
	}
	return m
}

// markLeader sorts members by name and marks the broker leader: the alive
// member with the broker role and the lowest name.
func markLeader(ms []Member) []Member {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	for i := range ms {
		if ms[i].Status == StatusAlive && ms[i].HasRole(RoleBroker) {
			ms[i].Leader = true
			break
		}
	}
	return ms
}

func tagsFor(cfg *Config, advertise string) map[string]string {
	return map[string]string{
		tagRoles:    strings.Join(cfg.Roles, ","),
		tagZone:     cfg.Zone,
		tagRegion:   cfg.Region,
		tagInternal: net.JoinHostPort(advertise, strconv.Itoa(cfg.InternalPort)),
	}
}

// serfLogger turns serf's and memberlist's "[LEVEL] msg" lines into
// zerolog events, so that gossip logs come out in the member's format.
func serfLogger(l zerolog.Logger) *log.Logger {
	return log.New(serfWriter{l.With().Str("component", "serf").Logger()}, "", 0)
}

type serfWriter struct{ l zerolog.Logger }

func (w serfWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	lvl := zerolog.InfoLevel
	for tag, l := range map[string]zerolog.Level{
		"[DEBUG]": zerolog.DebugLevel, "[INFO]": zerolog.InfoLevel,
		"[WARN]": zerolog.WarnLevel, "[ERR]": zerolog.ErrorLevel, "[ERROR]": zerolog.ErrorLevel,
	} {
		if i := strings.Index(line, tag); i >= 0 {
			lvl = l
			line = strings.TrimSpace(line[i+len(tag):])
			break
		}
	}
	w.l.WithLevel(lvl).Msg(line)
	return len(p), nil
}

var _ io.Writer = serfWriter{}
