package services

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/nats-io/nkeys"

	"gearbox/store/state"
)

// The accounts of a node's NATS server. Every node derives the same
// accounts and keys from the cluster secret and the app records, so a
// gear's key works on every node.
const (
	// sysAccount is NATS's system account: the nodes use it for
	// JetStream's cluster operations (removing the witness).
	sysAccount = "SYS"
	// platformAccount holds what gearbox keeps for apps and apps must
	// not touch: daemon leases, job ticks.
	platformAccount = "GEARBOX"
)

// The platform account's buckets (see node/singleton.go).
const (
	// JobsBucket keeps the states of every app's jobs, under APP_ID.JOB.
	JobsBucket = "jobs"
	// leaseBucketPrefix + app id names an app's lease bucket.
	leaseBucketPrefix = "lease_"
)

// LeaseBucket returns the name of the bucket of the app appID's lease.
func LeaseBucket(appID string) string { return leaseBucketPrefix + appID }

// AccountName returns the NATS account of the app with id appID.
func AccountName(appID string) string { return "app-" + appID }

// Limits caps what one app keeps in JetStream, across the cluster.
type Limits struct {
	// MaxMemory and MaxStore are bytes in memory-backed and file-backed
	// streams (buckets included), counting every replica.
	MaxMemory, MaxStore int64
	// MaxStreams and MaxConsumers count streams (queues, buckets) and
	// consumers.
	MaxStreams, MaxConsumers int
}

// LimitsFor returns the JetStream limits of an app whose gears are of
// size: small 32 MiB in memory and 256 MiB on disk, medium 128 MiB and
// 1 GiB, large 512 MiB and 4 GiB; 100 streams and 1000 consumers each.
// An unknown size gets small's.
func LimitsFor(size string) Limits {
	l := Limits{MaxMemory: 32 << 20, MaxStore: 256 << 20, MaxStreams: 100, MaxConsumers: 1000}
	switch size {
	case state.SizeMedium:
		l.MaxMemory, l.MaxStore = 128<<20, 1<<30
	case state.SizeLarge:
		l.MaxMemory, l.MaxStore = 512<<20, 4<<30
	}
	return l
}

// nkeyLabel prefixes the HMAC message that derives an account user's
// nkey seed from the cluster secret.
const nkeyLabel = "gearbox nats nkey "

// userKey derives the nkey pair of the user named label.
func userKey(secret, label string) (nkeys.KeyPair, error) {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(nkeyLabel + label))
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, m.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("derive nats key for %s: %w", label, err)
	}
	return kp, nil
}

// AppSeed returns the nkey seed that authenticates as the app appID's
// user, in NATS's text form ("SU..."): what the app's gears get.
func AppSeed(secret, appID string) ([]byte, error) {
	kp, err := userKey(secret, "app "+appID)
	if err != nil {
		return nil, err
	}
	return kp.Seed()
}

// appIDRE matches the app ids that may name an account (the broker
// makes hex ids).
var appIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// accountApp is what the accounts file needs of an app.
type accountApp struct {
	ID     string
	Limits Limits
}

// renderAccounts writes the NATS configuration of the accounts: the
// system account, the platform's and one per app, each with the one
// nkey user derived for it. Users have no permissions beyond their own
// account: NATS accounts are isolated from each other unless they
// export and import, which none does.
func renderAccounts(secret string, apps []accountApp) (string, error) {
	key := func(label string) (string, error) {
		kp, err := userKey(secret, label)
		if err != nil {
			return "", err
		}
		return kp.PublicKey()
	}
	sys, err := key("system")
	if err != nil {
		return "", err
	}
	plat, err := key("platform")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# Written by gearbox from the app records; rewritten on every change.\n")
	fmt.Fprintf(&b, "system_account: %s\naccounts: {\n", sysAccount)
	fmt.Fprintf(&b, "  %s: { users: [ { nkey: %s } ] }\n", sysAccount, sys)
	fmt.Fprintf(&b, "  %s: { jetstream: enabled, users: [ { nkey: %s } ] }\n", platformAccount, plat)
	sort.Slice(apps, func(i, j int) bool { return apps[i].ID < apps[j].ID })
	for _, a := range apps {
		if !appIDRE.MatchString(a.ID) {
			return "", fmt.Errorf("app id %q cannot name a nats account", a.ID)
		}
		u, err := key("app " + a.ID)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "  %s: { jetstream: { max_mem: %d, max_file: %d, max_streams: %d, max_consumers: %d }, users: [ { nkey: %s } ] }\n",
			strconv.Quote(AccountName(a.ID)), a.Limits.MaxMemory, a.Limits.MaxStore, a.Limits.MaxStreams, a.Limits.MaxConsumers, u)
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// writeFileAtomic replaces path with data, mode 0600.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
