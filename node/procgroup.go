package node

import (
	"fmt"
	"os"
	"strconv"
)

// Process groups: a run's process group is noted in a pid file, so that a
// node that died without stopping its gears finds what is left of them at
// its next start (killOrphans). Following the groups takes Linux's /proc
// (procgroup_linux.go).

// writePIDFile notes a run's process group in path.
func writePIDFile(path string, pgid int) error {
	if err := os.WriteFile(path, []byte(strconv.Itoa(pgid)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}
