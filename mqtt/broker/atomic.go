package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// writeFileAtomic replaces path with b (permission mode) so that a reader,
// or the next start after a power cut, sees the old contents or the new
// ones, never a mix: it writes a temporary file with a unique name in the
// same directory, syncs it, renames it over path and syncs the directory,
// so that the rename itself is durable. On any error before the rename the
// temporary file is removed and path is left as it was; every error, the
// directory sync's included, is returned.
//
// It is the mqtt tree's one atomic writer (password file, session store).
// gateway/internal/atomicfile is the same code for the gateway tree: the
// import policy keeps mqtt from importing gateway.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
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
		return fmt.Errorf("broker: write %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("broker: sync directory of %s: %w", path, err)
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
