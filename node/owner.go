package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Ownership of the trees that gears and builds write in.
//
// chownTree changes owners in a tree that a gear may be writing in at the
// same time, as the uid it runs as: it may swap a file for a symbolic
// link, or for a hard link to a file elsewhere (where the host allows
// hard links to files one does not own). So names are resolved only
// inside the tree (os.Root), each inode is opened once, checked through
// its descriptor, and changed through it: what is changed is what was
// checked.

// chownTree gives every directory and regular file of the tree at dir that
// take accepts to uid:gid and, if mode is not nil, sets its mode to
// mode(st). Symbolic links and other files are left alone.
func chownTree(dir string, uid, gid int, take func(st inode) bool, mode func(st inode) os.FileMode) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	var errs []error
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			return nil // gone meanwhile
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if err := chownOne(root, p, uid, gid, take, mode); err != nil && len(errs) < 10 {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("change owner of %s to %d: %w", dir, uid, errors.Join(errs...))
	}
	return nil
}

func chownOne(root *os.Root, name string, uid, gid int, take func(inode) bool, mode func(inode) os.FileMode) error {
	// O_NONBLOCK: a FIFO must not block the open.
	f, err := root.OpenFile(name, os.O_RDONLY|oNoFollow|oNonBlock, 0)
	if err != nil {
		return nil // a link, a socket, or gone meanwhile
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st, ok := statOf(fi)
	if !ok {
		return nil
	}
	if (!st.mode.IsDir() && !st.mode.IsRegular()) || !take(st) {
		return nil
	}
	if st.uid != uid || st.gid != gid {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if mode != nil {
		// Chown cleared set-uid and set-gid bits; Chmod sets the mode
		// whole.
		if err := f.Chmod(mode(st)); err != nil {
			return err
		}
	}
	return nil
}

// inode is what chownTree checks of a file: its type and permissions,
// and what fs.FileInfo does not say on every system, its owner and number
// of links (statOf).
type inode struct {
	mode     fs.FileMode
	uid, gid int
	nlink    uint64
}

func isDir(st inode) bool { return st.mode.IsDir() }

// giveToGear returns the take of chownTree that hands a gear's tree to
// uid: every directory and file but a hard link to a file that uid does
// not own already.
func giveToGear(uid int) func(inode) bool {
	return func(st inode) bool { return isDir(st) || st.nlink == 1 || st.uid == uid }
}

// rootsUnlinked is the take of chownTree that hands an unpacked
// deployment to its builder: what root owns, but hard links.
func rootsUnlinked(st inode) bool { return st.uid == 0 && (isDir(st) || st.nlink == 1) }

// ownedBy returns the take of chownTree that takes back what uid owns.
func ownedBy(uid int) func(inode) bool {
	return func(st inode) bool { return st.uid == uid }
}

// readOnlyMode is the mode of a sealed deployment's files, as Unpack
// makes them: 0755 for directories and executables, 0644 else.
func readOnlyMode(st inode) os.FileMode {
	if isDir(st) || st.mode&0o111 != 0 {
		return 0o755
	}
	return 0o644
}
