package run

// AlgoVersion is the manifest's algorithm version (Manifest.Algo): it changes whenever
// the same inputs would give different output bytes, so `tailor-batch version` can say
// which outputs a build writes.
func AlgoVersion() string { return algoVersion }
