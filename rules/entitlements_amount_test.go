package rules

import (
	"encoding/json"
	"testing"
)

func TestAmountJSONRoundTrip(t *testing.T) {
	for _, a := range []Amount{0, 5, 12450, -9800, 100} {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var back Amount
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if back != a {
			t.Errorf("round trip %d → %s → %d", a, b, back)
		}
	}
	var a Amount
	if err := json.Unmarshal([]byte(`"12.345"`), &a); err == nil {
		t.Error("three decimals accepted")
	}
}
