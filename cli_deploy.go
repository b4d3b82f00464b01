package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
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
			Flags: appFlags(),
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
				d, msgs, err := s.api.Deploy(s.ctx(), ns, s.arg(0), f, size)
				if err != nil {
					return err
				}
				return s.result(msgs, d, func(w io.Writer) error {
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
				return s.show(ds, func(w io.Writer) error {
					t := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
					fmt.Fprintln(t, "ID\tSIZE\tCREATED\tBY\tCURRENT")
					for _, d := range ds {
						fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\n", d.ID, humanBytes(d.Size), d.CreatedAt.Format("2006-01-02 15:04"), d.CreatedBy, yesNo(d.Current))
					}
					return t.Flush()
				})
			}),
		},
		{
			Name:      "activate",
			Usage:     "make a kept deployment current again (rollback)",
			UsageText: "gearbox app activate APP DEPLOYMENT_ID -n NAMESPACE [flags]",
			Flags:     appFlags(),
			Action: clientAction([]string{"APP", "DEPLOYMENT_ID"}, func(s *session) error {
				ns, err := s.namespace()
				if err != nil {
					return err
				}
				msgs, err := s.api.Activate(s.ctx(), ns, s.arg(0), s.arg(1))
				if err != nil {
					return err
				}
				return s.result(msgs, nil, nil)
			}),
		},
	}
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
