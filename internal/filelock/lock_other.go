//go:build !unix && !windows

package filelock

import (
	"errors"
	"os"
)

func tryLock(f *os.File) (bool, error) {
	return false, errors.New("file locks are not supported on this platform")
}

func unlock(f *os.File) error { return nil }
