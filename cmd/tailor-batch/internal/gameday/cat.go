package gameday

import (
	"context"

	"github.com/tailor-metrics/tailor/cmd/tailor-batch/internal/pipeline"
	"github.com/tailor-metrics/tailor/encoder"
)

// pipelineCat counts the points readers see in the published series files.
func pipelineCat(ctx context.Context, e *env, n *uint64) error {
	return pipeline.CatPoints(ctx, e.st, "", func(s *encoder.Series) error {
		*n += uint64(len(s.Ts))
		return nil
	})
}
