package node

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// natsKeyFile is the name, in a gear's directory, of the file that holds
// its app's NATS nkey seed (GEARBOX_NATS_NKEY_FILE).
//
// The seed is in a file rather than in the environment because a gear's
// environment is seen by every process the gear starts and lands in
// crash reports and debug pages; the file is readable by the gear's uid
// only (mode 0600, in the gear's directory, which the gear cannot
// replace), and every NATS client library reads an nkey seed file.
const natsKeyFile = "nats.nk"

// natsEnv returns the NATS variables of gear d's processes, none when the
// node runs no cluster services or the app's record is not known yet:
//
//	GEARBOX_NATS_URL        this node's NATS server
//	GEARBOX_NATS_NKEY_FILE  the file of the app's nkey seed
//	GEARBOX_NATS_REPLICAS   replicas for the streams and buckets the app
//	                        creates (the nodes that run NATS, 3 at most)
func (s *Supervisor) natsEnv(d desired, dir string) map[string]string {
	if s.cfg.Services == nil || d.appID == "" {
		return nil
	}
	return map[string]string{
		"GEARBOX_NATS_URL":       s.cfg.Services.ClientURL(),
		"GEARBOX_NATS_NKEY_FILE": filepath.Join(dir, natsKeyFile),
		envNATSReplicas:          strconv.Itoa(s.cfg.Services.Replicas()),
	}
}

// envNATSReplicas changes as nodes come and go; it is left out of a
// program's key, so that a growing cluster does not restart every gear
// (the platform raises the replicas of existing streams itself).
const envNATSReplicas = "GEARBOX_NATS_REPLICAS"

// writeNATSKey writes the seed of gear d's app to the gear's key file,
// owned by the gear's uid (the node's when gears are not isolated), mode
// 0600. A file that already holds it is left alone.
func (g *gear) writeNATSKey(d desired) error {
	if g.s.cfg.Services == nil || d.appID == "" {
		return nil
	}
	seed, err := g.s.cfg.Services.AppSeed(d.appID)
	if err != nil {
		return err
	}
	path := filepath.Join(g.dir, natsKeyFile)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, seed) {
		return nil
	}
	tmp, err := os.CreateTemp(g.dir, ".nats-*")
	if err != nil {
		return fmt.Errorf("write nats key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(seed)
	if err == nil && g.uid != 0 {
		err = tmp.Chown(g.uid, g.uid)
	}
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write nats key: %w", err)
	}
	return nil
}
