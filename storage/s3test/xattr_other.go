//go:build !linux

package s3test

func setXattrProbe(string) error { return errNoXattr }
