package config

import (
	"fmt"
	"strconv"
	"strings"
)

// cronField describes one field of a 5-field cron expression.
type cronField struct {
	name   string
	lo, hi int
	names  []string // optional names, index+lo is the value (jan=1, sun=0)
}

// cronFields returns the five fields of a cron expression, in order.
func cronFields() []cronField {
	return []cronField{
		{"minute", 0, 59, nil},
		{"hour", 0, 23, nil},
		{"day-of-month", 1, 31, nil},
		{"month", 1, 12, []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
		{"day-of-week", 0, 7, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
	}
}

// cronDescriptors returns the @ shorthands accepted in place of the five fields.
func cronDescriptors() []string {
	return []string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
}

// checkCron checks a standard 5-field cron expression (minute hour day-of-month month
// day-of-week): each field a comma list of *, N, N-M, with an optional /STEP; month and
// weekday names allowed. The schedule is informational (rdsaudit does not schedule
// itself), but a wrong one misleads whoever reads the report.
func checkCron(expr string) error {
	expr = strings.TrimSpace(expr)
	if strings.HasPrefix(expr, "@") {
		descriptors := cronDescriptors()
		if contains(descriptors, expr) {
			return nil
		}
		return fmt.Errorf("unknown descriptor %q (valid: %s)", expr, strings.Join(descriptors, ", "))
	}
	fields := strings.Fields(expr)
	if len(fields) != 5 {
		return fmt.Errorf("want 5 fields (minute hour day-of-month month day-of-week), got %d in %q", len(fields), expr)
	}
	for i, cf := range cronFields() {
		if err := checkCronField(cf, fields[i]); err != nil {
			return fmt.Errorf("%s field %q: %w", cf.name, fields[i], err)
		}
	}
	return nil
}

func checkCronField(cf cronField, s string) error {
	for _, item := range strings.Split(s, ",") {
		rng, step, hasStep := strings.Cut(item, "/")
		if hasStep {
			n, err := strconv.Atoi(step)
			if err != nil || n < 1 {
				return fmt.Errorf("bad step %q", step)
			}
		}
		if rng == "*" {
			continue
		}
		a, b, isRange := strings.Cut(rng, "-")
		lo, err := cronValue(cf, a)
		if err != nil {
			return err
		}
		if isRange {
			hi, err := cronValue(cf, b)
			if err != nil {
				return err
			}
			if hi < lo {
				return fmt.Errorf("range %s is backwards", rng)
			}
		}
	}
	return nil
}

func cronValue(cf cronField, s string) (int, error) {
	for i, n := range cf.names {
		if strings.EqualFold(s, n) {
			return i + cf.lo, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n < cf.lo || n > cf.hi {
		return 0, fmt.Errorf("%d out of range %d-%d", n, cf.lo, cf.hi)
	}
	return n, nil
}
