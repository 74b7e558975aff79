//go:build !linux

package s3test

import "errors"

var errNoXattr = errors.New("no user xattrs")

func setXattrProbe(string) error { return errNoXattr }
