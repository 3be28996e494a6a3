package faults

import (
	"fmt"
	"testing"
	"time"
)

// aaePeriod is the exchange period of the anti-entropy schedule.
const aaePeriod = 3 * time.Second

// TestPartitionAntiEntropy cuts n3 from n1 and n2 while clients only write (blind memcache sets over 150
// keys on every node: nothing reads them, so no read repair touches them), then heals. The replicas of
// every key must be identical, checked replica by replica below the coordinators, within the heal's
// settling plus one exchange period: hinted handoff hands the fallbacks' writes back, and the exchanges
// repair whatever else differs, unread.
func TestPartitionAntiEntropy(t *testing.T) {
	h := schedule(t)
	h.flags = []string{"-aae-exchange-period", aaePeriod.String(), "-aae-concurrency", "4", "-aae-repair-rate", "5000"}
	cut := timings().cut
	h.form(3)
	s := h.startSampler(sampling)
	w := h.startLoad(loadSpec{nodes: []int{1, 2, 3}, setPerNode: 3, setKeys: 150, think: 10 * time.Millisecond})
	time.Sleep(warmup) // schedule: load on the healthy cluster first
	from := h.partition([]int{1, 2}, []int{3})
	time.Sleep(cut) // schedule: how long the cut lasts
	healAt := h.heal()
	hw := h.watchHeal(healAt, []int{1, 2, 3})
	time.Sleep(loadTail) // schedule: load after the fault ended
	h.verdict(w, hw, s, verdictSpec{
		schedule: fmt.Sprintf("partition-aae-%v", cut), desc: fmt.Sprintf("n3 cut from n1,n2 for %v under blind writes only, then healed; exchanges every %v", cut, aaePeriod),
		members: []int{1, 2, 3}, faultFrom: from, faultTo: healAt, grace: detectGrace,
		sides:  []sideSpec{{"n1+n2", []int{1, 2}, true}, {"n3", []int{3}, true}},
		healAt: healAt, healTarget: healTarget, convergeTarget: healTarget + aaePeriod,
		cut: [2][]int{{1, 2}, {3}},
	})
}
