package ingest

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// listEndOffsets returns the current end offset of every partition of topics.
func listEndOffsets(ctx context.Context, cl *kgo.Client, topics []string) (map[tp]int64, error) {
	meta := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		meta.Topics = append(meta.Topics, rt)
	}
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	for _, t := range mresp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, fmt.Errorf("list partitions of %s: %w", *t.Topic, err)
		}
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = *t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p.Partition
			rp.Timestamp = -1 // latest
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	// The client routes ListOffsets to each partition's leader and merges the answers.
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	out := map[tp]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", t.Topic, p.Partition, err)
			}
			out[tp{t.Topic, p.Partition}] = p.Offset
		}
	}
	return out, nil
}

// EndOffsets returns the current end offset of every partition of topics, by
// partition (topics' partition numbers must not collide; tools use it for one topic).
func EndOffsets(ctx context.Context, cl *kgo.Client, topics []string) (map[int32]int64, error) {
	m, err := listEndOffsets(ctx, cl, topics)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(m))
	for k, v := range m {
		out[k.partition] = v
	}
	return out, nil
}

// CommittedOffsets returns group's committed offset of every partition it has one for,
// by topic and partition: the offsets the sink has stored everything below. With topics
// empty, every topic the group committed to.
func CommittedOffsets(ctx context.Context, cl *kgo.Client, group string, topics []string) (map[string]map[int32]int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	if len(topics) > 0 {
		meta := kmsg.NewPtrMetadataRequest()
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			meta.Topics = append(meta.Topics, rt)
		}
		mresp, err := meta.RequestWith(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("list partitions: %w", err)
		}
		for _, t := range mresp.Topics {
			if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
				return nil, fmt.Errorf("list partitions of %s: %w", *t.Topic, err)
			}
			rt := kmsg.NewOffsetFetchRequestTopic()
			rt.Topic = *t.Topic
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, p.Partition)
			}
			req.Topics = append(req.Topics, rt)
		}
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("fetch the committed offsets of group %s: %w", group, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("fetch the committed offsets of group %s: %w", group, err)
	}
	out := map[string]map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("committed offset of %s/%d in group %s: %w", t.Topic, p.Partition, group, err)
			}
			if p.Offset < 0 {
				continue // nothing committed
			}
			if out[t.Topic] == nil {
				out[t.Topic] = map[int32]int64{}
			}
			out[t.Topic][p.Partition] = p.Offset
		}
	}
	return out, nil
}
