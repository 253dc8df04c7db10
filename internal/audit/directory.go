package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/report"
)

// collectDirectory reads the Per User CAL assignments of every configured domain
// (issue 15), stages each domain's evidence beside the hosts' and interprets them at
// evalAt. A domain that cannot be read never fails the audit: its coverage says why
// and the per-user figures are unknown. Only a staging failure (the disk) is an error.
// Without a directory source it returns nil.
func collectDirectory(ctx context.Context, o Options, stage *report.Stage, evalAt time.Time, log zerolog.Logger) (*report.PerUser, error) {
	if o.Directory == nil {
		return nil, nil
	}
	docs := o.Directory.Documents(ctx)
	pu := &report.PerUser{Evidence: []report.EvidenceRef{}}
	paths := map[string]string{}
	for _, d := range docs {
		ref, err := stage.AddDirectoryEvidence(d)
		if err != nil {
			return nil, fmt.Errorf("stage directory evidence: %w", err)
		}
		pu.Evidence = append(pu.Evidence, ref)
		paths[d.Domain] = ref.Path
		e := log.Info()
		if !d.Collected() {
			e = log.Warn().Str("class", string(d.Coverage.Class)).Str("error", d.Coverage.Message)
		}
		e.Str("domain", d.Domain).Str("status", d.Coverage.Status).Int("holders", len(d.Users)).Int("pages", d.Pages).Msg("directory read")
	}
	reclaim := o.ReclaimAfter
	if reclaim <= 0 {
		reclaim = 90 * 24 * time.Hour
	}
	pu.Summary = directory.Summarise(docs, evalAt, reclaim)
	for i := range pu.Summary.Domains {
		pu.Summary.Domains[i].Evidence = paths[pu.Summary.Domains[i].Domain]
	}
	return pu, nil
}

func perUserSummary(pu *report.PerUser) *directory.Summary {
	if pu == nil {
		return nil
	}
	return pu.Summary
}
