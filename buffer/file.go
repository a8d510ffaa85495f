package buffer

import (
	"io"
	"os"
)

// file is what the queue needs of an open file. *os.File implements it; tests
// substitute files that fail on purpose (a full disk, an I/O error).
type file interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
}

// fileSystem opens files. osFS is the real one.
type fileSystem interface {
	OpenFile(name string, flag int, perm os.FileMode) (file, error)
}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// datasync flushes f's data and the metadata needed to read it back
// (fdatasync on Linux: an in-place overwrite costs no journal commit).
func datasync(f file) error {
	if osf, ok := f.(*os.File); ok {
		return fdatasync(osf)
	}
	return f.Sync()
}
