package dnsmgr

import (
	"fmt"

	"gearbox/store"
	"gearbox/store/state"
)

// watchedBuckets are the buckets a table is built from: a change in any
// of them rebuilds it.
var watchedBuckets = []string{state.BucketApps, state.BucketGears, state.BucketGearStatus, state.BucketNodes,
	state.BucketRouters, state.BucketHADNS, state.BucketNameServers}

// readInputs reads the live records a table is built from, and the
// membership from members. Records that do not decode are left out and
// counted in skipped.
func readInputs(st *store.Store, members func() []store.Member) (in Inputs, skipped int, err error) {
	in.Members = members()
	if in.Apps, skipped, err = list[state.App](st, state.BucketApps, skipped); err != nil {
		return in, skipped, err
	}
	if in.Gears, skipped, err = list[state.Gear](st, state.BucketGears, skipped); err != nil {
		return in, skipped, err
	}
	if in.Statuses, skipped, err = list[state.GearStatus](st, state.BucketGearStatus, skipped); err != nil {
		return in, skipped, err
	}
	if in.Nodes, skipped, err = list[state.Node](st, state.BucketNodes, skipped); err != nil {
		return in, skipped, err
	}
	if in.Routers, skipped, err = list[state.Router](st, state.BucketRouters, skipped); err != nil {
		return in, skipped, err
	}
	if in.Claims, skipped, err = list[state.HADNS](st, state.BucketHADNS, skipped); err != nil {
		return in, skipped, err
	}
	in.NameServers, skipped, err = list[state.NameServer](st, state.BucketNameServers, skipped)
	return in, skipped, err
}

// list decodes the live records of bucket, adding the ones that do not
// decode to skipped.
func list[T any](st *store.Store, bucket string, skipped int) ([]T, int, error) {
	recs, err := st.List(bucket)
	if err != nil {
		return nil, skipped, fmt.Errorf("list %s: %w", bucket, err)
	}
	out := make([]T, 0, len(recs))
	for _, r := range recs {
		var v T
		if err := r.Decode(&v); err != nil {
			skipped++
			continue
		}
		out = append(out, v)
	}
	return out, skipped, nil
}
