// Package atomicfile replaces a file so that a reader, or the next start
// after a power cut, sees either the old contents or the new ones, never a
// mix and never an empty file.
//
// It imports nothing but the standard library, so that every package under
// gateway that writes a small state file (the command log, the uplink's
// meter) can share it. mqtt/broker, which may not import gateway (the
// trees know nothing of each other, gateway/deps_test.go), keeps the mqtt
// tree's one copy in mqtt/broker/atomic.go for the password file and the
// session store.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes b to path with permission perm: it writes a temporary
// file with a unique name in the same directory, syncs it, renames it over
// path and syncs the directory, so that the rename itself is durable. On
// any error the temporary file is removed and path is left as it was (or,
// when only the directory sync failed, replaced but perhaps not durably);
// every error, the directory sync's included, is returned.
func WriteFile(path string, b []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("atomicfile: sync directory of %s: %w", path, err)
	}
	return nil
}

// syncDir makes the directory entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
