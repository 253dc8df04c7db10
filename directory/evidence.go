// Package directory reads Per User CAL assignments from Active Directory (issue 15): a
// paged, read-only LDAP search per domain for the user objects that hold any msTS
// licence attribute (domain.md §8), kept as raw values in a directory evidence
// document, and interprets those documents into per-user CAL counts.
//
// It never writes to a directory: a collection is one bind, a paged search and an
// unbind. A domain that cannot be read ends as a document with a classified failure,
// and its per-user figures are unknown, never zero.
package directory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/evidence"
)

// Schema tags the directory evidence document.
const Schema = "rdsaudit.directory/v1"

// FileSuffix ends a directory evidence file's name: <domain>.directory.json, in a run's
// evidence directory and in an offline evidence directory alike.
const FileSuffix = ".directory.json"

// Coverage statuses.
const (
	StatusCollected = "collected"
	StatusFailed    = "failed"
)

// FailSizeLimit is a domain whose answer exceeded directory.max_entries or max_bytes, or
// a server limit that paging could not get past. The other classes are the host
// collectors' (evidence.FailDNS, FailConnect, FailTLS, FailAuth, FailTimeout, ...).
const FailSizeLimit evidence.FailureClass = "size_limit"

// Attributes are the only attributes a search asks for, in this order.
var Attributes = []string{
	"sAMAccountName", "userPrincipalName", "distinguishedName", "userAccountControl", "lastLogonTimestamp",
	"msTSLicenseVersion", "msTSExpireDate", "msTSManagingLS",
	"msTSLicenseVersion2", "msTSExpireDate2", "msTSManagingLS2",
	"msTSLicenseVersion3", "msTSExpireDate3", "msTSManagingLS3",
	"msTSLicenseVersion4", "msTSExpireDate4", "msTSManagingLS4",
}

// Filter selects user objects holding any msTS licence attribute in any slot.
const Filter = "(&(objectClass=user)(|" +
	"(msTSLicenseVersion=*)(msTSExpireDate=*)(msTSManagingLS=*)" +
	"(msTSLicenseVersion2=*)(msTSExpireDate2=*)(msTSManagingLS2=*)" +
	"(msTSLicenseVersion3=*)(msTSExpireDate3=*)(msTSManagingLS3=*)" +
	"(msTSLicenseVersion4=*)(msTSExpireDate4=*)(msTSManagingLS4=*)))"

// Evidence is one domain's directory evidence document.
type Evidence struct {
	Schema      string    `json:"schema"`
	Domain      string    `json:"domain"`
	BaseDN      string    `json:"base_dn"`
	Server      string    `json:"server,omitempty"` // the URL that answered
	Bind        string    `json:"bind,omitempty"`   // simple | kerberos (absent in documents before 2026-12)
	Collector   string    `json:"collector"`        // ldap | offline
	CollectedAt time.Time `json:"collected_at"`
	Coverage    Coverage  `json:"coverage"`
	Filter      string    `json:"filter,omitempty"`
	PageSize    int       `json:"page_size,omitempty"`
	Pages       int       `json:"pages,omitempty"`
	// Pseudonymised: user names and DNs are keyed hashes (directory.pseudonymise).
	Pseudonymised bool   `json:"pseudonymised,omitempty"`
	Users         []User `json:"users"`
}

// Coverage says whether the domain was read; a failure carries its class and the
// attempts made (one per URL tried).
type Coverage struct {
	Status   string                `json:"status"`
	Class    evidence.FailureClass `json:"class,omitempty"`
	Message  string                `json:"message,omitempty"`
	Attempts []Attempt             `json:"attempts,omitempty"`
}

// Attempt is one URL tried.
type Attempt struct {
	URL     string                `json:"url"`
	Class   evidence.FailureClass `json:"class,omitempty"`
	Message string                `json:"message,omitempty"`
}

// Collected reports whether the domain's figures are known.
func (e *Evidence) Collected() bool { return e.Coverage.Status == StatusCollected }

// User is one user object as read: every value raw, as the directory returned it.
type User struct {
	SAMAccountName     string `json:"sam_account_name,omitempty"`
	UserPrincipalName  string `json:"user_principal_name,omitempty"`
	DN                 string `json:"dn"`
	UserAccountControl string `json:"user_account_control,omitempty"`
	LastLogonTimestamp string `json:"last_logon_timestamp,omitempty"`
	Slots              []Slot `json:"slots"`
}

// Slot is one msTS attribute slot (1 for msTSLicenseVersion/ExpireDate/ManagingLS, 2-4
// for the numbered variants) with at least one of its attributes present.
type Slot struct {
	Slot           int    `json:"slot"`
	LicenseVersion string `json:"license_version,omitempty"`
	ExpireDate     string `json:"expire_date,omitempty"`
	ManagingLS     string `json:"managing_ls,omitempty"`
}

// Failed returns a failed document.
func Failed(domain, baseDN, collector string, at time.Time, class evidence.FailureClass, msg string, attempts []Attempt) *Evidence {
	return &Evidence{Schema: Schema, Domain: domain, BaseDN: baseDN, Collector: collector, CollectedAt: at.UTC(),
		Coverage: Coverage{Status: StatusFailed, Class: class, Message: msg, Attempts: attempts}, Users: []User{}}
}

// Encode writes the document as indented JSON.
func Encode(w io.Writer, e *Evidence) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(e)
}

// MaxDocumentBytes bounds a directory evidence document read back (offline).
const MaxDocumentBytes = 1 << 30

// Decode reads and checks one document.
func Decode(data []byte) (*Evidence, error) {
	if len(data) > MaxDocumentBytes {
		return nil, fmt.Errorf("directory evidence: %d bytes, more than %d", len(data), MaxDocumentBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var e Evidence
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("directory evidence: %w", err)
	}
	if e.Schema != Schema {
		return nil, fmt.Errorf("directory evidence: schema %q, want %q", e.Schema, Schema)
	}
	if e.Domain == "" {
		return nil, errors.New("directory evidence: no domain")
	}
	switch e.Coverage.Status {
	case StatusCollected, StatusFailed:
	default:
		return nil, fmt.Errorf("directory evidence: coverage status %q, want collected or failed", e.Coverage.Status)
	}
	dns := make(map[string]bool, len(e.Users))
	for i, u := range e.Users {
		// Users are counted by DN: an empty or repeated one would merge holders.
		dn := strings.ToLower(u.DN)
		switch {
		case dn == "":
			return nil, fmt.Errorf("directory evidence: users[%d]: no distinguishedName", i)
		case dns[dn]:
			return nil, fmt.Errorf("directory evidence: users[%d]: distinguishedName repeated (a user is listed once)", i)
		}
		dns[dn] = true
		for _, s := range u.Slots {
			if s.Slot < 1 || s.Slot > 4 {
				return nil, fmt.Errorf("directory evidence: users[%d]: slot %d, want 1-4", i, s.Slot)
			}
		}
	}
	return &e, nil
}
