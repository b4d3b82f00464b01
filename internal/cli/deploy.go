package cli

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"gearbox/broker/api"
)

// deployCommands are `gearbox app deploy`, `app deployments` and
// `app activate`.
func deployCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:      "deploy",
			Usage:     "upload an application's code: a folder, or a .tar.gz of it",
			UsageText: "gearbox app deploy APP DIR|FILE -n NAMESPACE [flags]",
			Description: "Packs DIR (without .git) into a tar.gz, or takes FILE as it is, and uploads it; it\n" +
				"becomes the application's current deployment. A gearbox.yml with web: (the command that\n" +
				"serves HTTP on $GEARBOX_IP:$PORT), or a Procfile with a web: line, says how to run it;\n" +
				"without one the folder is served as static files.",
			Flags: appFlags(waitFlags()...),
			Action: clientAction([]string{"APP", "DIR|FILE"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				f, size, packed, err := archiveOf(s.arg(1))
				if err != nil {
					return err
				}
				defer f.Close()
				if packed != "" {
					defer os.Remove(packed)
				}
				progress := s.c.App.ErrWriter
				fmt.Fprintf(progress, "uploading %s (%s)\n", s.arg(1), humanBytes(size))
				d, msgs, err := s.api.Deploy(s.ctx(), ns, s.arg(0), &uploadProgress{r: f, size: size, w: progress}, size)
				if err != nil {
					return err
				}
				s.messages(msgs)
				ro, err := s.waitRollout(ns, s.arg(0), d.ID)
				if err != nil {
					return err
				}
				return s.show(struct {
					api.Deployment
					Rollout *api.Rollout `json:"rollout,omitempty"`
				}{d, ro}, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "Deployment %s (%s) is current for %s.\n", d.ID[:12], humanBytes(d.Size), s.arg(0))
					return err
				})
			}),
		},
		{
			Name:      "deployments",
			Usage:     "list an application's kept deployments",
			UsageText: "gearbox app deployments APP -n NAMESPACE [flags]",
			Flags:     appFlags(),
			Action: clientAction([]string{"APP"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				ds, err := s.api.Deployments(s.ctx(), ns, s.arg(0))
				if err != nil {
					return err
				}
				ro, err := s.api.Rollout(s.ctx(), ns, s.arg(0))
				if err != nil {
					return err
				}
				return s.show(struct {
					Deployments []api.Deployment `json:"deployments"`
					Rollout     api.Rollout      `json:"rollout"`
				}{ds, ro}, func(w io.Writer) error {
					t := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
					fmt.Fprintln(t, "ID\tSIZE\tCREATED\tBY\tCURRENT")
					for _, d := range ds {
						fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\n", d.ID, humanBytes(d.Size), d.CreatedAt.Format("2006-01-02 15:04"), d.CreatedBy, yesNo(d.Current))
					}
					if err := t.Flush(); err != nil {
						return err
					}
					if ro.Deployment != "" {
						_, err = fmt.Fprintf(w, "\nroll-out of %s: %s, %d of %d gears; %s\n", short(ro.Deployment), ro.State, ro.Done, ro.Total, ro.Message)
					}
					return err
				})
			}),
		},
		{
			Name:      "activate",
			Usage:     "make a kept deployment current again (rollback)",
			UsageText: "gearbox app activate APP DEPLOYMENT_ID -n NAMESPACE [flags]",
			Flags:     appFlags(waitFlags()...),
			Action: clientAction([]string{"APP", "DEPLOYMENT_ID"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				msgs, err := s.api.Activate(s.ctx(), ns, s.arg(0), s.arg(1))
				if err != nil {
					return err
				}
				s.messages(msgs)
				ro, err := s.waitRollout(ns, s.arg(0), strings.ToLower(s.arg(1)))
				if err != nil {
					return err
				}
				if s.json() {
					return writeJSON(s.stdout(), struct {
						Messages []api.Message `json:"messages"`
						Rollout  *api.Rollout  `json:"rollout,omitempty"`
					}{msgs, ro})
				}
				return nil
			}),
		},
	}
}

// waitFlags are the flags of commands that start a roll-out.
func waitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "no-wait", Usage: "return once the broker has the deployment; do not follow the roll-out"},
		&cli.DurationFlag{Name: "wait", Value: 15 * time.Minute, Usage: "follow the roll-out for at most `DURATION`"},
	}
}

// waitRollout follows the app's roll-out of deployment dep, printing its
// progress, until it is done (nil error), fails, or --wait passes (an
// error either way). It returns nil at once under --no-wait.
func (s *session) waitRollout(ns, app, dep string) (*api.Rollout, error) {
	if s.c.Bool("no-wait") {
		return nil, nil
	}
	out := s.c.App.ErrWriter
	deadline := time.Now().Add(s.c.Duration("wait"))
	last := ""
	for {
		r, err := s.api.Rollout(s.ctx(), ns, app)
		if err != nil {
			return nil, err
		}
		if r.Deployment != dep {
			return &r, fmt.Errorf("deployment %s is no longer current for %s (now %s): another deploy or activate took over", short(dep), app, short(r.Deployment))
		}
		line := fmt.Sprintf("roll-out: %d of %d gears; %s", r.Done, r.Total, r.Message)
		if line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		switch r.State {
		case "done":
			return &r, nil
		case "failed":
			return &r, fmt.Errorf("roll-out of deployment %s failed: %s; 'gearbox app activate %s ID' rolls back to a kept deployment", short(dep), r.Message, app)
		}
		if time.Now().After(deadline) {
			return &r, fmt.Errorf("roll-out of deployment %s still running after %s; it goes on: 'gearbox app deployments %s' shows it", short(dep), s.c.Duration("wait"), app)
		}
		select {
		case <-s.ctx().Done():
			return &r, s.ctx().Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// short is the first 12 hex digits of a deployment id.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// uploadProgress reports how much of an upload was sent, every tenth.
type uploadProgress struct {
	r     io.Reader
	size  int64
	n     int64
	shown int64 // tenths shown
	w     io.Writer
}

func (u *uploadProgress) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	u.n += int64(n)
	if u.size > 0 {
		if t := u.n * 10 / u.size; t > u.shown && t < 10 {
			u.shown = t
			fmt.Fprintf(u.w, "uploading: %d%% (%s of %s)\n", t*10, humanBytes(u.n), humanBytes(u.size))
		}
	}
	return n, err
}

// archiveOf opens what to upload: path itself when it is a file, or a
// tar.gz packed from the folder path into a temporary file (returned as
// packed, for the caller to remove).
func archiveOf(path string) (f *os.File, size int64, packed string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, "", fmt.Errorf("deploy: %w", err)
	}
	if !fi.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, "", fmt.Errorf("deploy: %w", err)
		}
		return f, fi.Size(), "", nil
	}
	tmp, err := os.CreateTemp("", "gearbox-deploy-*.tar.gz")
	if err != nil {
		return nil, 0, "", fmt.Errorf("deploy: pack %s: %w", path, err)
	}
	fail := func(err error) (*os.File, int64, string, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, 0, "", fmt.Errorf("deploy: pack %s: %w", path, err)
	}
	if err := packDir(tmp, path); err != nil {
		return fail(err)
	}
	n, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return fail(err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	return tmp, n, tmp.Name(), nil
}

// packDir writes dir as a tar.gz to w: regular files, folders and
// relative symlinks, without .git; paths relative to dir.
func packDir(w io.Writer, dir string) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
			if filepath.IsAbs(link) {
				return fmt.Errorf("%s links to an absolute path (%s); nodes refuse those", rel, link)
			}
		case !info.Mode().IsRegular() && !info.IsDir():
			return fmt.Errorf("%s is not a regular file, folder or symlink", rel)
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname, hdr.Uid, hdr.Gid = "", "", 0, 0
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// humanBytes prints a byte count for people.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
