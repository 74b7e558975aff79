package run

// ResourceError is a run that ran out of memory, or of disk to spill to. A larger
// memory limit, fewer DuckDB threads or a temp directory on a disk with room fixes it
// (RunOptions.Engine; the command names its flags).
type ResourceError struct{ Err error }

func (e *ResourceError) Error() string {
	return e.Err.Error() + "\n(raise the memory limit, lower the DuckDB threads (each needs some 16-32 MiB), or spill to a temp directory on a disk with room)"
}

func (e *ResourceError) Unwrap() error { return e.Err }
