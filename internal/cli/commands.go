package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdsaudit/rdsaudit/config"
	"github.com/rdsaudit/rdsaudit/rules"
)

func newValidateCmd(e *env) *cobra.Command {
	var path string
	var strict bool
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check configuration, inventory, credentials, rules, waivers and entitlements (no network)",
		Long: `validate checks the configuration file and everything it references without contacting any
host: every problem of the file in one pass (file:line: key: message; the closest known
key for an unknown one), the inventory, every credential reference (the environment
variable is set, the password file readable; never printing a secret), the rule set,
waivers and the entitlement ledger. Secret files other users can read are warnings.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return usageErr(errors.New("--config: a configuration file is required (see samples/config.yaml)"))
			}
			cfg, err := config.Check(path, cmd.Flags())
			if err != nil {
				return usageErr(err)
			}
			lg, err := e.configLogger(cfg)
			if err != nil {
				return usageErr(err)
			}
			e.log = lg
			// The same loading as an audit's: inventory, rule set, ledger, signing key.
			in, err := auditOptions(e, cfg, nil, time.Time{})
			if err != nil {
				return err
			}
			// Waiver lint: an expired waiver or one matching no host is worth a look but does
			// not make the configuration unusable (the audit reports expired waivers as
			// RDS-WAIVER-001); --strict makes any lint problem fail validation.
			for _, w := range append(cfg.Warnings(), cfg.SecretFileWarnings()...) {
				// Each warning starts with its key: locate it in the file.
				if field, _, ok := strings.Cut(w, ": "); ok {
					if at := cfg.Where(field); at != "" {
						w = at + ": " + w
					}
				}
				fmt.Fprintf(e.stdout, "warning: %s\n", w)
			}
			problems := rules.LintWaivers(in.RuleSet, in.Hosts, e.now())
			for _, p := range problems {
				fmt.Fprintf(e.stdout, "warning: %s\n", p)
			}
			if strict && len(problems) > 0 {
				return usageErr(fmt.Errorf("%d waiver problem(s) in %s (--strict)", len(problems), cfg.RulesFile))
			}
			creds := fmt.Sprintf("%d credential(s) resolved", len(cfg.Credentials))
			if cfg.Collection.Source != config.SourceWinRM {
				creds = "credentials not resolved (collection.source is " + cfg.Collection.Source + ")"
			}
			fmt.Fprintf(e.stdout, "ok: %s: %d hosts, %s, rule set v%d (%d rules enabled, %d waivers), %d entitlement lines\n",
				cfg.File(), len(in.Hosts), creds, in.RuleSet.Version, enabledCount(in.RuleSet), len(in.RuleSet.Waivers), len(in.Entitlements))
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().BoolVar(&strict, "strict", false, "fail (exit 2) on waiver lint problems too")
	return cmd
}

func newRulesCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "rules [RULE-ID]",
		Short: "List the rule catalogue, or print one rule in full",
		Args:  args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cat := rules.Rules()
			if len(args) == 0 {
				// One block per rule: ID, severity and title on a line, then the whole
				// rationale folded under it; a description is never cut.
				for i, r := range cat {
					if i > 0 {
						fmt.Fprintln(e.stdout)
					}
					fmt.Fprintf(e.stdout, "%s  %s  %s\n    %s\n", r.ID, r.Severity, r.Title, wrap(r.Rationale, "    "))
				}
				return nil
			}
			for _, r := range cat {
				if strings.EqualFold(r.ID, args[0]) {
					fmt.Fprintf(e.stdout, "%s  %s\n\nSeverity:    %s\nScope:       %s\n\nRationale:\n  %s\n\nRemediation:\n  %s\n",
						r.ID, r.Title, r.Severity, r.Scope, wrap(r.Rationale, "  "), wrap(r.Remediation, "  "))
					if len(r.Evidence) > 0 {
						fmt.Fprintf(e.stdout, "\nEvidence read:\n  - %s\n", strings.Join(r.Evidence, "\n  - "))
					}
					if len(r.References) > 0 {
						fmt.Fprintf(e.stdout, "\nReferences:\n  - %s\n", strings.Join(r.References, "\n  - "))
					}
					return nil
				}
			}
			return usageErr(fmt.Errorf("rules: no rule %q (run `rdsaudit rules` for the catalogue)", args[0]))
		},
	}
}

// wrap folds s at about 88 columns, indenting continuation lines.
func wrap(s, indent string) string {
	var b strings.Builder
	col := 0
	for i, w := range strings.Fields(s) {
		if i > 0 {
			if col+1+len(w) > 88 {
				b.WriteString("\n" + indent)
				col = 0
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}

func enabledCount(rs *rules.RuleSet) int {
	n := 0
	for _, r := range rules.Rules() {
		if rs.Enabled(r.ID) {
			n++
		}
	}
	return n
}
