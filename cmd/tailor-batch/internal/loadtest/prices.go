package loadtest

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

//go:embed prices.yaml
var defaultPrices []byte

// Prices are the unit prices and retention assumptions of the cost forecast.
type Prices struct {
	S3StorageGBMonth   float64 `yaml:"s3_storage_gb_month"`
	S3PutPer1000       float64 `yaml:"s3_put_per_1000"`
	S3GetPer1000       float64 `yaml:"s3_get_per_1000"`
	ComputeVCPUHour    float64 `yaml:"compute_vcpu_hour"`
	KafkaGBMonth       float64 `yaml:"kafka_storage_gb_month"`
	KafkaReplication   float64 `yaml:"kafka_replication"`
	LegacyKafkaHours   float64 `yaml:"legacy_kafka_retention_hours"`
	TailorKafkaHours   float64 `yaml:"tailor_kafka_retention_hours"`
	SegmentRetentionHr float64 `yaml:"segment_retention_hours"`
}

// DefaultPrices are the embedded public list prices (prices.yaml).
func DefaultPrices() Prices {
	p, err := ParsePrices(defaultPrices, "embedded prices.yaml")
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return p
}

// LoadPrices reads a prices file; fields it leaves out keep their defaults.
func LoadPrices(path string) (Prices, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Prices{}, fmt.Errorf("prices: %w", err)
	}
	return parseOver(DefaultPrices(), b, path)
}

// ParsePrices parses prices YAML; unknown fields are errors (a typo would otherwise
// silently price something at zero).
func ParsePrices(b []byte, name string) (Prices, error) {
	return parseOver(Prices{}, b, name)
}

func parseOver(p Prices, b []byte, name string) (Prices, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return Prices{}, fmt.Errorf("prices %s: %w", name, err)
	}
	for field, v := range map[string]float64{
		"s3_storage_gb_month": p.S3StorageGBMonth, "s3_put_per_1000": p.S3PutPer1000, "s3_get_per_1000": p.S3GetPer1000,
		"compute_vcpu_hour": p.ComputeVCPUHour, "kafka_storage_gb_month": p.KafkaGBMonth, "kafka_replication": p.KafkaReplication,
		"legacy_kafka_retention_hours": p.LegacyKafkaHours, "tailor_kafka_retention_hours": p.TailorKafkaHours,
		"segment_retention_hours": p.SegmentRetentionHr,
	} {
		if v < 0 {
			return Prices{}, fmt.Errorf("prices %s: %s is %g, must not be negative", name, field, v)
		}
	}
	return p, nil
}
