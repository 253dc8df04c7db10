package rules

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rdsaudit/rdsaudit/directory"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
)

// Input is everything one evaluation reads. Evaluate does no I/O: the rule set, the
// ledger and the history are loaded by the caller.
type Input struct {
	// Now is the evaluation clock (the run's start); results never read the wall clock.
	Now time.Time
	// Hosts holds every targeted host, collected or not.
	Hosts        []*facts.Facts
	Entitlements []Entitlement
	// Ledger says whether an entitlement ledger was given at all (an empty ledger is a
	// ledger that entitles nothing). When false and Entitlements is empty, the ledger
	// rules are not applicable.
	Ledger  bool
	RuleSet *RuleSet // nil: DefaultRuleSet()
	History History  // nil: no history; history rules are not applicable
	// PerUser is the Active Directory Per User CAL summary (nil: no directory
	// configured; the RDS-PU rules are then not applicable).
	PerUser *directory.Summary
}

// Evaluation is the outcome of one evaluation: every result (pass, fail, not applicable,
// error), each waiver's status, and the CAL position.
type Evaluation struct {
	Now            time.Time      `json:"now"`
	RuleSetVersion int            `json:"rule_set_version"`
	RuleSetHash    string         `json:"rule_set_hash,omitempty"`
	RuleSetSource  string         `json:"rule_set_source,omitempty"`
	FailOn         Severity       `json:"fail_on"`
	Disabled       []string       `json:"disabled_rules,omitempty"`
	Results        []Result       `json:"results"`
	Waivers        []WaiverStatus `json:"waivers,omitempty"`
	Position       []PositionRow  `json:"position,omitempty"`
}

// Counts tallies results by outcome; waived failures are counted in Waived, not Fail.
type Counts struct {
	Pass          int `json:"pass"`
	Fail          int `json:"fail"`
	Waived        int `json:"waived"`
	NotApplicable int `json:"not_applicable"`
	Error         int `json:"error"`
}

// Counts tallies the results.
func (e *Evaluation) Counts() Counts {
	var c Counts
	for i := range e.Results {
		switch r := &e.Results[i]; {
		case r.Outcome == Fail && r.Waived:
			c.Waived++
		case r.Outcome == Fail:
			c.Fail++
		case r.Outcome == Pass:
			c.Pass++
		case r.Outcome == NotApplicable:
			c.NotApplicable++
		case r.Outcome == Error:
			c.Error++
		}
	}
	return c
}

// Blocking returns the failures that decide the verdict: unwaived failures at or above
// FailOn, in result order.
func (e *Evaluation) Blocking() []*Result {
	var out []*Result
	for i := range e.Results {
		if r := &e.Results[i]; r.Outcome == Fail && !r.Waived && r.Severity >= e.FailOn {
			out = append(out, r)
		}
	}
	return out
}

// Failed reports whether any unwaived failure is at or above FailOn. Errors (missing
// evidence) do not fail the run by themselves; an uncollected host fails RDS-COLLECT-001.
func (e *Evaluation) Failed() bool {
	for i := range e.Results {
		if r := &e.Results[i]; r.Outcome == Fail && !r.Waived && r.Severity >= e.FailOn {
			return true
		}
	}
	return false
}

// ExitCode is the process exit code the verdict maps to: 0 passed, 1 failed.
func (e *Evaluation) ExitCode() int {
	if e.Failed() {
		return 1
	}
	return 0
}

// sevRule marks a result whose severity the engine fills from the rule (default or
// rule-set override).
const sevRule Severity = -1

// sink collects the results of the rule being evaluated, appending them to out: it sets
// their rule, severity and finding ID as they come, and notes whether they come in result
// order.
type sink struct {
	info     RuleInfo
	sev      Severity // the rule's severity (default or rule-set override)
	override bool     // the rule set overrides even a severity the rule computed
	out      []Result
	start    int    // where the rule's results begin in out
	ids      []byte // their finding IDs, findingIDLen bytes each
	unsorted bool   // two results of a rule are out of result order (sortResults)
}

// begin starts a rule's results.
func (s *sink) begin(info RuleInfo, sev Severity, override bool) {
	s.info, s.sev, s.override = info, sev, override
	s.start, s.ids = len(s.out), s.ids[:0]
}

func (s *sink) add(r Result) { s.put(r, sevRule) }

// addSev adds a result whose severity the rule computed (GRACE-001); a rule-set severity
// override still replaces it.
func (s *sink) addSev(r Result, sev Severity) { s.put(r, sev) }

func (s *sink) put(r Result, sev Severity) {
	r.RuleID, r.Severity = s.info.ID, sev
	if s.override || sev == sevRule {
		r.Severity = s.sev
	}
	s.ids = appendFindingID(s.ids, r.RuleID, r.Subject, r.Key)
	if n := len(s.out); n > s.start && subjectLess(&r, &s.out[n-1]) {
		s.unsorted = true
	}
	s.out = append(s.out, r)
}

// end gives the rule's results their finding IDs, cut from one string: one allocation
// per rule rather than one per result.
func (s *sink) end() {
	all := string(s.ids)
	rs := s.out[s.start:]
	for i := range rs {
		rs[i].ID = all[i*findingIDLen : (i+1)*findingIDLen]
	}
}

// Evaluate runs the enabled rules of the catalogue over the input. It is deterministic:
// the same input gives the same results in the same order.
func Evaluate(in Input) *Evaluation {
	rs := in.RuleSet
	if rs == nil {
		rs = DefaultRuleSet()
	}
	c := newContext(in, rs)
	ev := &Evaluation{Now: in.Now.UTC(), RuleSetVersion: rs.Version, RuleSetHash: rs.Hash,
		RuleSetSource: rs.Source, FailOn: rs.FailOn}
	var plan []Rule
	var sinks []sink
	for _, rule := range catalogue() {
		info := rule.Info()
		if !rs.Enabled(info.ID) {
			ev.Disabled = append(ev.Disabled, info.ID)
			continue
		}
		sev, override := rs.severity(info)
		plan = append(plan, rule)
		sinks = append(sinks, sink{})
		sinks[len(sinks)-1].begin(info, sev, override)
	}
	// Every host and group rule gives one result per subject, and fleet rules read only
	// the context: so each rule's results have their place in one slice before any host
	// is checked (a rule that gave more or fewer would be copied by gather).
	var byRoles []*roleRules
	counts := make([]int, len(plan))
	for i, rule := range plan {
		switch r := rule.(type) {
		case hostRule:
			rr := c.roleRules(&byRoles, sinks[i].info.Roles)
			rr.rules = append(rr.rules, i)
			counts[i] = len(rr.hosts)
		case groupRule:
			counts[i] = len(c.groups)
		case fleetRule:
			r.checkFleet(c, &sinks[i])
			counts[i] = len(sinks[i].out)
		default:
			panic(fmt.Sprintf("rules: %s implements no check", sinks[i].info.ID))
		}
	}
	waivers := rs.Enabled(WaiverRuleID)
	extra := 0
	if waivers {
		extra = len(rs.Waivers)
	}
	all := place(sinks, counts, extra)
	// Host rules run over a block of their subjects at a time, rule after rule, so that
	// the facts they read are still in cache for the next rule.
	const block = 256
	for _, rr := range byRoles {
		for lo := 0; lo < len(rr.hosts); lo += block {
			hosts := rr.hosts[lo:min(lo+block, len(rr.hosts))]
			for _, i := range rr.rules {
				checkHosts(c, plan[i].(hostRule), hosts, &sinks[i])
			}
		}
	}
	for i, rule := range plan {
		if r, ok := rule.(groupRule); ok {
			for _, g := range c.groups {
				r.checkGroup(c, g, &sinks[i])
			}
		}
	}
	unsorted := false
	for i := range sinks {
		sinks[i].end()
		unsorted = unsorted || sinks[i].unsorted
	}
	results := gather(all, sinks, counts)
	ev.Waivers = applyWaivers(c, results)
	if waivers {
		info := waiverRuleInfo()
		sev, _ := rs.severity(info)
		s := &sink{out: results}
		s.begin(info, sev, true)
		checkWaivers(c, ev.Waivers, s)
		s.end()
		results, unsorted = s.out, unsorted || s.unsorted
	} else {
		ev.Disabled = append(ev.Disabled, WaiverRuleID)
	}
	ev.Results = results
	ev.Position = c.position
	// Rules come in catalogue order, so the results are in order unless a rule gave
	// its own out of order.
	if unsorted {
		sortResults(ev.Results)
	}
	return ev
}

// roleRules are the host rules of one list of roles, and their subjects.
type roleRules struct {
	roles []string
	hosts []*facts.Facts
	rules []int // indexes in the plan
}

// roleRules returns the entry of rrs for roles, adding it if there is none: each list
// of roles is filtered once per evaluation.
func (c *evalCtx) roleRules(rrs *[]*roleRules, roles []string) *roleRules {
	for _, rr := range *rrs {
		if slices.Equal(rr.roles, roles) {
			return rr
		}
	}
	rr := &roleRules{roles: roles, hosts: c.subjects(roles)}
	*rrs = append(*rrs, rr)
	return rr
}

// checkHosts runs a host rule over hosts; an uncollected host is an error unless the
// rule judges uncollected hosts itself, and a collected host is checked only if it meets
// the rule's precondition.
func checkHosts(c *evalCtx, r hostRule, hosts []*facts.Facts, s *sink) {
	u, _ := r.(uncollectedRule)
	g, _ := r.(guardedRule)
	for _, h := range hosts {
		switch {
		case h.Collected():
			if g == nil || g.precondition(h, s) {
				r.checkHost(c, h, hostSubject(h), s)
			}
		case u != nil:
			u.checkUncollected(c, h, s)
		default:
			s.add(notCollected(h))
		}
	}
}

// place gives each sink room for counts[i] results (and their IDs) in one new slice, in
// sink order, with room for extra results after them, and returns that slice. A sink's
// results so far move there.
func place(sinks []sink, counts []int, extra int) []Result {
	n := extra
	for _, k := range counts {
		n += k
	}
	all := make([]Result, n)
	off := 0
	for i := range sinks {
		s := &sinks[i]
		s.out = append(all[off:off:off+counts[i]], s.out...)
		s.ids = slices.Grow(s.ids, (counts[i]-len(s.ids)/findingIDLen)*findingIDLen)
		off += counts[i]
	}
	return all[:off]
}

// gather returns the sinks' results in sink order: all, where place put them, when
// every sink gave as many as counted; else a new slice.
func gather(all []Result, sinks []sink, counts []int) []Result {
	off := 0
	for i := range sinks {
		out := sinks[i].out
		if len(out) != counts[i] || (len(out) > 0 && &out[0] != &all[off]) {
			var rs []Result
			for j := range sinks {
				rs = append(rs, sinks[j].out...)
			}
			return rs
		}
		off += len(out)
	}
	return all
}

// ruleOrder is each rule's position in the catalogue (RDS-WAIVER-001 last).
func ruleOrder() map[string]int {
	cat := catalogue()
	m := make(map[string]int, len(cat)+1)
	for i, r := range cat {
		m[r.Info().ID] = i
	}
	m[WaiverRuleID] = len(cat)
	return m
}

// sortResults orders results by catalogue order, then subject kind, subject name (case
// insensitive) and key.
func sortResults(rs []Result) {
	order := ruleOrder()
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := &rs[i], &rs[j]
		if a.RuleID != b.RuleID {
			return order[a.RuleID] < order[b.RuleID]
		}
		return subjectLess(a, b)
	})
}

// subjectLess orders one rule's results: by subject kind, subject name (case
// insensitive) and key.
func subjectLess(a, b *Result) bool {
	if a.Subject.Kind != b.Subject.Kind {
		return a.Subject.Kind < b.Subject.Kind
	}
	if c := compareFold(a.Subject.Name, b.Subject.Name); c != 0 {
		return c < 0
	}
	return a.Key < b.Key
}

// subjects are a host rule's subjects: the hosts with one of its roles (every host when
// it names none), in host order.
func (c *evalCtx) subjects(roles []string) []*facts.Facts {
	if len(roles) == 0 {
		return c.hosts
	}
	var hs []*facts.Facts
	for _, h := range c.hosts {
		for _, r := range roles {
			if h.Host.HasRole(r) {
				hs = append(hs, h)
				break
			}
		}
	}
	return hs
}

// compareFold compares strings.ToLower(a) with strings.ToLower(b), without building
// either for ASCII names.
func compareFold(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		if ca >= utf8.RuneSelf || cb >= utf8.RuneSelf {
			return strings.Compare(strings.ToLower(a), strings.ToLower(b))
		}
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			if ca < cb {
				return -1
			}
			return 1
		}
	}
	// One is a prefix of the other up to case; lowering the rest of the longer one
	// leaves it non-empty.
	return cmp.Compare(len(a), len(b))
}

func hostSubject(h *facts.Facts) Subject {
	return Subject{Kind: SubjectHost, Name: h.Host.Name, Group: h.Host.Group}
}

func notCollected(h *facts.Facts) Result {
	msg := "host not collected"
	if h.Failure != nil {
		msg = fmt.Sprintf("host not collected (%s): %s", h.Failure.Class, h.Failure.Message)
	}
	return Result{Outcome: Error, Subject: hostSubject(h), Message: msg, Source: "collection",
		Observed: "status " + string(h.Status)}
}

// group is the session hosts of one inventory group.
type group struct {
	Name    string
	Members []*facts.Facts // sorted by name, case-insensitively
	// byName holds the indexes of Members in byte order of their names (the order of a
	// group rule's evidence fields); nil when two members have the same name.
	byName []int
}

// indexNames sets byName. Names are usually ordered the same with and without case, so
// this is a linear check; it sorts otherwise.
func (g *group) indexNames() {
	idx := make([]int, len(g.Members))
	for i := range idx {
		idx[i] = i
	}
	name := func(i int) string { return g.Members[idx[i]].Host.Name }
	sorted := true
	for i := 1; i < len(idx) && sorted; i++ {
		sorted = name(i-1) <= name(i)
	}
	if !sorted {
		sort.SliceStable(idx, func(i, j int) bool { return name(i) < name(j) })
	}
	for i := 1; i < len(idx); i++ {
		if name(i-1) == name(i) {
			return
		}
	}
	g.byName = idx
}

// evalCtx is the indexed input the rules read. Built once per evaluation (linear).
type evalCtx struct {
	now      time.Time
	rs       *RuleSet
	hist     History
	hosts    []*facts.Facts
	groups   []*group
	ls       map[string]*facts.Facts // license servers by ServerKey(full) and ShortName (unique only)
	lsList   []*facts.Facts
	issued   map[string][]issuedRef // issued Per Device CALs by ShortName(computer)
	ent      []Entitlement
	ledger   bool
	position []PositionRow
	posIndex map[posKey]int
	params   map[string]any                   // "RULE-ID/param" → value
	packEv   map[*facts.Facts][]EvidenceField // license server → packEvidence of each key pack
	lsDone   bool                             // every license server in the inventory was collected
	missLS   []string
	perUser  *directory.Summary // rules_peruser.go
	dirRows  map[posKey]bool    // position rows whose Per User usage is the directory's
}

type issuedRef struct {
	server *facts.Facts
	lic    *facts.IssuedFacts
}

func newContext(in Input, rs *RuleSet) *evalCtx {
	c := &evalCtx{now: in.Now.UTC(), rs: rs, hist: in.History, ent: in.Entitlements,
		ledger: in.Ledger || len(in.Entitlements) > 0, ls: map[string]*facts.Facts{},
		issued: map[string][]issuedRef{}, lsDone: true, params: resolveParams(rs),
		packEv: map[*facts.Facts][]EvidenceField{}, perUser: in.PerUser}
	c.hosts = make([]*facts.Facts, 0, len(in.Hosts))
	for _, h := range in.Hosts {
		if h != nil {
			c.hosts = append(c.hosts, h)
		}
	}
	sort.SliceStable(c.hosts, func(i, j int) bool {
		return compareFold(c.hosts[i].Host.Name, c.hosts[j].Host.Name) < 0
	})
	groups := map[string]*group{}
	short := map[string]int{}
	for _, h := range c.hosts {
		if h.Host.HasRole(evidence.RoleSessionHost) && h.Host.Group != "" {
			g := groups[h.Host.Group]
			if g == nil {
				g = &group{Name: h.Host.Group}
				groups[h.Host.Group] = g
				c.groups = append(c.groups, g)
			}
			g.Members = append(g.Members, h)
		}
		if !h.Host.HasRole(evidence.RoleLicenseServer) {
			continue
		}
		c.lsList = append(c.lsList, h)
		if !h.Collected() || h.Holdings == nil {
			c.lsDone = false
			c.missLS = append(c.missLS, h.Host.Name)
		}
		for _, n := range []string{h.Host.Name, h.Host.Address} {
			if n != "" {
				c.ls[facts.ServerKey(n)] = h
			}
		}
		short[facts.ShortName(h.Host.Name)]++
	}
	for _, h := range c.lsList {
		if sn := facts.ShortName(h.Host.Name); short[sn] == 1 {
			if _, taken := c.ls[sn]; !taken {
				c.ls[sn] = h
			}
		}
		if h.Holdings == nil {
			continue
		}
		pe := make([]EvidenceField, len(h.Holdings.KeyPacks))
		for i, kp := range h.Holdings.KeyPacks {
			pe[i] = packEvidence(h, kp)
		}
		c.packEv[h] = pe
		for i := range h.Holdings.Issued {
			il := &h.Holdings.Issued[i]
			if il.Computer != "" {
				k := facts.ShortName(il.Computer)
				c.issued[k] = append(c.issued[k], issuedRef{server: h, lic: il})
			}
		}
	}
	sort.Slice(c.groups, func(i, j int) bool { return c.groups[i].Name < c.groups[j].Name })
	for _, g := range c.groups {
		g.indexNames()
	}
	c.buildPosition()
	return c
}

// lookupLS finds an audited license server by the name a session host specifies: the
// full name first, then a unique short name.
func (c *evalCtx) lookupLS(name string) *facts.Facts {
	if h := c.ls[facts.ServerKey(name)]; h != nil {
		return h
	}
	return c.ls[facts.ShortName(name)]
}

// hostServers resolves a session host's effective license servers: the audited,
// collected servers with holdings, and the names that are not usable (not in the
// inventory, or not collected).
func (c *evalCtx) hostServers(h *facts.Facts) (found []*facts.Facts, missing []string) {
	for _, n := range h.LicenseServers.Effective {
		ls := c.lookupLS(n)
		if ls == nil || !ls.Collected() || ls.Holdings == nil {
			missing = append(missing, n)
			continue
		}
		if keyPacksUnread(ls) {
			// The server answered, but its key packs could not be read: it holds
			// unknown CALs, not none.
			missing = append(missing, n+" (key packs not read)")
			continue
		}
		found = append(found, ls)
	}
	return found, missing
}

// keyPacksUnread says the license server's Win32_TSLicenseKeyPack section failed (access
// denied, WMI error): its evidence has no key packs, which does not mean it holds none.
func keyPacksUnread(ls *facts.Facts) bool {
	for _, e := range ls.Errors {
		if strings.HasPrefix(e.Section, fieldKeyPack) {
			return true
		}
	}
	return false
}

// isRDSH says whether the host runs the RD Session Host role: WMI TerminalServerMode
// first, else the installed features; known false when neither says.
func isRDSH(h *facts.Facts) (rdsh, known bool) {
	if h.AppServer != nil {
		return *h.AppServer, true
	}
	if len(h.OS.Roles) > 0 {
		for _, r := range h.OS.Roles {
			if strings.EqualFold(r, "RDS-RD-Server") {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}

// requireRDSH emits not-applicable or error and returns false when the host is not
// (known to be) an RD Session Host.
func requireRDSH(h *facts.Facts, s *sink) bool {
	rdsh, known := isRDSH(h)
	switch {
	case !known:
		s.add(Result{Outcome: Error, Subject: hostSubject(h),
			Message:  "cannot tell whether the RD Session Host role is installed: Win32_TerminalServiceSetting.TerminalServerMode and the installed features are missing",
			Evidence: []EvidenceField{{Field: fieldTSMode, Value: "missing"}}})
		return false
	case !rdsh:
		s.add(Result{Outcome: NotApplicable, Subject: hostSubject(h),
			Message:  "not an RD Session Host (remote administration only)",
			Evidence: []EvidenceField{{Field: fieldTSMode, Value: tsModeValue(h)}}})
		return false
	}
	return true
}

func tsModeValue(h *facts.Facts) string {
	switch {
	case h.AppServer == nil:
		return "missing; features " + strings.Join(h.OS.Roles, ",")
	case *h.AppServer:
		return "1 (AppServer)"
	}
	return "0 (remote administration)"
}

func (c *evalCtx) param(ruleID, name string) any {
	if v, ok := c.params[ruleID+"/"+name]; ok {
		return v
	}
	panic(fmt.Sprintf("rules: %s has no parameter %q", ruleID, name))
}

func (c *evalCtx) intParam(ruleID, name string) int {
	v, _ := c.param(ruleID, name).(int)
	return v
}

func (c *evalCtx) strParam(ruleID, name string) string {
	v, _ := c.param(ruleID, name).(string)
	return v
}

// resolveParams resolves every rule parameter once: the rule set's value, else the
// default.
func resolveParams(rs *RuleSet) map[string]any {
	out := map[string]any{}
	for _, r := range catalogue() {
		info := r.Info()
		for _, p := range info.Params {
			v := p.Default
			if rc, ok := rs.Rules[info.ID]; ok {
				if x, ok := rc.Params[p.Name]; ok {
					v = x
				}
			}
			out[info.ID+"/"+p.Name] = v
		}
	}
	return out
}

func days(d time.Duration) float64 { return d.Hours() / 24 }

func fmtTime(t *time.Time) string {
	if t == nil {
		return "absent"
	}
	return t.UTC().Format(time.RFC3339)
}

func i64(p *int64) string {
	if p == nil {
		return "absent"
	}
	return fmt.Sprint(*p)
}

func listOrNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ", ")
}
