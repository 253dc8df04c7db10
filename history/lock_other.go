//go:build !unix && !windows

package history

import (
	"errors"
	"os"
)

func tryLock(f *os.File) (bool, error) {
	return false, errors.New("run lock not supported on this platform")
}

func unlock(f *os.File) error { return nil }
