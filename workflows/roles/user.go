package roles

import (
	"slices"
	"strings"
	"time"

	"github.com/jmlgate/jmlgate/scim/schema"
)

// User is what a role's `when` sees as `user`. The JSON names are the CEL
// field names. UserFromSCIM never leaves Emails or Groups nil, so they
// encode as [] rather than null; StartDate and EndDate encode as null when
// absent.
type User struct {
	UserName    string `json:"userName"`
	DisplayName string `json:"displayName"`
	Title       string `json:"title"`
	UserType    string `json:"userType"`
	Active      bool   `json:"active"`
	// Emails are all the email values, lower-cased, in document order,
	// without empty values or repeats.
	Emails []string `json:"emails"`
	// From the enterprise extension.
	Department     string `json:"department"`
	Division       string `json:"division"`
	Organization   string `json:"organization"`
	CostCenter     string `json:"costCenter"`
	EmployeeNumber string `json:"employeeNumber"`
	// Manager is the manager's id (enterprise manager.value), "" if none.
	Manager string `json:"manager"`
	// Groups are the display names of the groups the person is in.
	Groups []string `json:"groups"`
	// StartDate and EndDate come from the lifecycle extension
	// (urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User), in
	// UTC; nil when absent.
	StartDate *time.Time `json:"startDate"`
	EndDate   *time.Time `json:"endDate"`
}

// celUser is User as the CEL type jmlgate.User. It differs only in the
// dates: CEL has no nullable timestamp, so they are dyn fields holding nil
// (CEL null) or a time.Time (CEL timestamp). A *time.Time field would be
// typed timestamp, but a nil one would read as the zero time and compare
// as a real date.
type celUser struct {
	UserName       string   `cel:"userName"`
	DisplayName    string   `cel:"displayName"`
	Title          string   `cel:"title"`
	UserType       string   `cel:"userType"`
	Active         bool     `cel:"active"`
	Emails         []string `cel:"emails"`
	Department     string   `cel:"department"`
	Division       string   `cel:"division"`
	Organization   string   `cel:"organization"`
	CostCenter     string   `cel:"costCenter"`
	EmployeeNumber string   `cel:"employeeNumber"`
	Manager        string   `cel:"manager"`
	Groups         []string `cel:"groups"`
	StartDate      any      `cel:"startDate"`
	EndDate        any      `cel:"endDate"`
}

func (u *User) cel() *celUser {
	c := &celUser{
		UserName:       u.UserName,
		DisplayName:    u.DisplayName,
		Title:          u.Title,
		UserType:       u.UserType,
		Active:         u.Active,
		Emails:         u.Emails,
		Department:     u.Department,
		Division:       u.Division,
		Organization:   u.Organization,
		CostCenter:     u.CostCenter,
		EmployeeNumber: u.EmployeeNumber,
		Manager:        u.Manager,
		Groups:         u.Groups,
	}
	if u.StartDate != nil {
		c.StartDate = *u.StartDate
	}
	if u.EndDate != nil {
		c.EndDate = *u.EndDate
	}
	return c
}

// UserFromSCIM builds a User from a normalized SCIM User document (as
// resource.Normalize returns it or the store holds it: canonical attribute
// names, extension attributes under their URN key) and the display names of
// the groups the person is in. groups is copied as given, or [] when nil.
//
// It never fails: an attribute that is absent, or not of the type the
// schema gives it (which a normalized document never has), reads as "",
// false, [] or nil. A date that is not an xsd:dateTime reads as nil; one
// without a zone offset is taken as UTC. doc is not modified and the User
// shares nothing with it.
func UserFromSCIM(doc map[string]any, groups []string) User {
	ent, _ := doc[schema.EnterpriseURN].(map[string]any)
	life, _ := doc[schema.LifecycleURN].(map[string]any)
	u := User{
		UserName:       str(doc, "userName"),
		DisplayName:    str(doc, "displayName"),
		Title:          str(doc, "title"),
		UserType:       str(doc, "userType"),
		Emails:         emails(doc["emails"]),
		Department:     str(ent, "department"),
		Division:       str(ent, "division"),
		Organization:   str(ent, "organization"),
		CostCenter:     str(ent, "costCenter"),
		EmployeeNumber: str(ent, "employeeNumber"),
		Groups:         slices.Clone(groups),
		StartDate:      dateTime(life, "startDate"),
		EndDate:        dateTime(life, "endDate"),
	}
	u.Active, _ = doc["active"].(bool)
	if m, ok := ent["manager"].(map[string]any); ok {
		u.Manager = str(m, "value")
	}
	if u.Groups == nil {
		u.Groups = []string{}
	}
	return u
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func emails(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		m, _ := e.(map[string]any)
		s := strings.ToLower(str(m, "value"))
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// dateTimeLayouts are the xsd:dateTime forms SCIM allows (see
// resource.ValidDateTime); without an offset the time is taken as UTC.
var dateTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"}

func dateTime(m map[string]any, key string) *time.Time {
	s, ok := m[key].(string)
	if !ok {
		return nil
	}
	for _, l := range dateTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			t = t.UTC()
			return &t
		}
	}
	return nil
}
