package filter

import "testing"

const benchFilter = `userType eq "Employee" and emails[type eq "work" and value co "@example.com"] and meta.lastModified gt "2025-01-01T00:00:00Z"`

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchFilter); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	e, err := Parse(benchFilter)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(e, registry.User); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	f, err := CompileString(benchFilter, registry.User)
	if err != nil {
		b.Fatal(err)
	}
	doc := decode(b, bjensenJSON)
	if !f.Match(doc) {
		b.Fatal("benchmark filter must match the document")
	}
	b.ReportAllocs()
	for b.Loop() {
		f.Match(doc)
	}
}

// BenchmarkMatchUserName is the common "userName eq" lookup on a miss.
func BenchmarkMatchUserName(b *testing.B) {
	f, err := CompileString(`userName eq "someone.else@example.com"`, registry.User)
	if err != nil {
		b.Fatal(err)
	}
	doc := decode(b, bjensenJSON)
	b.ReportAllocs()
	for b.Loop() {
		f.Match(doc)
	}
}
