package benchrun

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// Series is the samples of one measurement, in milliseconds, with their median, p10, p90 and maximum.
type Series struct {
	Median  float64   `json:"median_ms"`
	P10     float64   `json:"p10_ms"`
	P90     float64   `json:"p90_ms"`
	Max     float64   `json:"max_ms"`
	Samples []float64 `json:"samples_ms"`
}

// Add records a sample.
func (s *Series) Add(d time.Duration) {
	s.Samples = append(s.Samples, float64(d.Microseconds())/1000)
	sorted := slices.Sorted(slices.Values(s.Samples))
	s.Median, s.P10, s.P90, s.Max = Percentile(sorted, 50), Percentile(sorted, 10), Percentile(sorted, 90), sorted[len(sorted)-1]
}

// Percentile of sorted samples, interpolated between the nearest ranks.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

// Loadavg is the machine's 1, 5 and 15 minute load average, for the report: a busy machine makes every
// number slower.
func Loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// WriteJSON writes a bench's results, indented, to path.
func WriteJSON(path string, v any) error {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(out, '\n'), 0o644)
}
