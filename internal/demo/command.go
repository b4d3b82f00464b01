package demo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"
)

// Defaults of the demo's timings, the seed's.
const (
	DefaultSendEvery = 5 * time.Second
	DefaultJobEvery  = 20 * time.Second
)

// Command is `gearbox cluster-demo`, which the demo's gears run. It is
// hidden from `gearbox --help`: users meet it through `gearbox dev`.
func Command() *cli.Command {
	return &cli.Command{
		Name:   "cluster-demo",
		Hidden: true,
		Usage:  "the sample app of 'gearbox dev': a queue, a replicated cache, an HA daemon and job, web sessions",
		Description: "Run in a gear, from the deployment 'gearbox dev' makes (gearbox.yml runs\n" +
			"'cluster-demo web' as the web process, 'cluster-demo daemon' as the HA daemon counter\n" +
			"and 'cluster-demo job' as the HA job ajob). It reads the gear's environment:\n" +
			"GEARBOX_NATS_URL, GEARBOX_NATS_NKEY_FILE, GEARBOX_NATS_REPLICAS, GEARBOX_GEAR_ID,\n" +
			"GEARBOX_IP and PORT, GEARBOX_FENCING_TOKEN (daemon), GEARBOX_JOB_TICK (job).",
		Subcommands: []*cli.Command{
			{Name: "web", Usage: "serve / and /count, and log the queue's messages",
				Action: func(*cli.Context) error {
					ctx, stop := signalContext()
					defer stop()
					return Web(ctx)
				}},
			{Name: "daemon", Usage: "queue the cache's counter and increment it, every --every",
				Flags: []cli.Flag{&cli.DurationFlag{Name: "every", Value: DefaultSendEvery, Usage: "time between two sends"}},
				Action: func(c *cli.Context) error {
					if c.Duration("every") < 10*time.Millisecond {
						return fmt.Errorf("--every %s: want 10ms or more", c.Duration("every"))
					}
					ctx, stop := signalContext()
					defer stop()
					return Daemon(ctx, c.Duration("every"))
				}},
			{Name: "job", Usage: "increment the cache's job counter once for $GEARBOX_JOB_TICK",
				Action: func(*cli.Context) error {
					ctx, stop := signalContext()
					defer stop()
					return Job(ctx)
				}},
		},
	}
}

// Manifest returns the demo's gearbox.yml: the daemon sends every
// sendEvery, the job runs every jobEvery (1 s or more). The web process
// answers the load balancers' health checks on "/", which it logs, as
// the seed's demo did.
func Manifest(sendEvery, jobEvery time.Duration) string {
	return fmt.Sprintf("web: ./bin/gearbox cluster-demo web\n"+
		"daemons:\n  counter: ./bin/gearbox cluster-demo daemon --every %s\n"+
		"jobs:\n  ajob: {command: ./bin/gearbox cluster-demo job, every: %s}\n", sendEvery, jobEvery)
}

// Archive returns the demo's deployment archive (tar.gz): gearbox.yml
// and bin/gearbox, a copy of the executable exe.
func Archive(exe string, sendEvery, jobEvery time.Duration) ([]byte, error) {
	f, err := os.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("demo archive: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("demo archive: %w", err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	manifest := Manifest(sendEvery, jobEvery)
	now := time.Now()
	steps := []func() error{
		func() error {
			return tw.WriteHeader(&tar.Header{Name: "gearbox.yml", Mode: 0o644, Size: int64(len(manifest)), ModTime: now, Typeflag: tar.TypeReg})
		},
		func() error { _, err := io.WriteString(tw, manifest); return err },
		func() error {
			return tw.WriteHeader(&tar.Header{Name: "bin/", Mode: 0o755, ModTime: now, Typeflag: tar.TypeDir})
		},
		func() error {
			return tw.WriteHeader(&tar.Header{Name: "bin/gearbox", Mode: 0o755, Size: fi.Size(), ModTime: now, Typeflag: tar.TypeReg})
		},
		func() error { _, err := io.CopyN(tw, f, fi.Size()); return err },
		tw.Close,
		zw.Close,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("demo archive: %w", err)
		}
	}
	return buf.Bytes(), nil
}
