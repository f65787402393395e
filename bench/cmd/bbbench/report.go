package main

import (
	"fmt"
	"slices"
	"strings"
)

var issueTitles = map[int]string{
	2:  "Issue 2: bb commit on Docker bottles",
	3:  "Issue 3: export, push, serve",
	4:  "Issue 4: smolvm bottles (stand-in), no Docker",
	10: "Issue 10: incremental commits (dir backend, container and smolvm stand-ins), bb's pipeline only",
}

// step returns the step with the given ID that has a median, or nil.
func (e *benchEnv) step(id string) *step {
	for _, s := range e.rep.Steps {
		if s.ID == id && s.Median != nil {
			return s
		}
	}
	return nil
}

// targets evaluates the ratios the issues ask for, from the steps that ran.
func (e *benchEnv) targets() []target {
	var ts []target
	timeRatio := func(issue int, label, num, den string, limit float64) {
		a, b := e.step(num), e.step(den)
		if a == nil || b == nil || b.Median.Wall == 0 {
			return
		}
		v := a.Median.Wall / b.Median.Wall
		ts = append(ts, target{Issue: issue, Label: label, Value: v, Limit: limit, Unit: "×", Pass: v <= limit})
	}
	speedRatio := func(issue int, label, num, den string, limit float64) {
		a, b := e.step(num), e.step(den)
		if a == nil || b == nil {
			return
		}
		v := mbps(a) / mbps(b)
		ts = append(ts, target{Issue: issue, Label: label, Value: v, Limit: limit, Unit: "×", AtMin: true, Pass: v >= limit})
	}
	for _, b := range e.bottles {
		sz := b.Size
		timeRatio(2, "pipeline alone ("+sz+"): bb commit --from-dir ÷ tar | pigz -1", "dir-bb/"+sz, "dir-pigz/"+sz, 1.2)
		timeRatio(2, "bb commit --no-load --full ÷ docker exec tar | pigz -1 ("+sz+")", "commit-store-full/"+sz, "exec-pigz/"+sz, 1.2)
		timeRatio(2, "bb commit --no-load (incremental) ÷ docker exec tar | pigz -1 ("+sz+")", "commit-store-warm/"+sz, "exec-pigz/"+sz, 1.2)
		timeRatio(2, "bb commit --no-load (incremental) ÷ docker commit ("+sz+")", "commit-store-warm/"+sz, "docker-commit/"+sz, 1.0)
		timeRatio(2, "bb commit + load (incremental) ÷ docker load of the diff layer alone ("+sz+")", "commit-load-warm/"+sz, "docker-load-diff/"+sz, 1.25)
		timeRatio(2, "bb commit + load (incremental) ÷ seed pipeline ("+sz+")", "commit-load-warm/"+sz, "seed/"+sz, 0.15)
		timeRatio(2, "bb commit + load --full ÷ seed pipeline ("+sz+")", "commit-load-full/"+sz, "seed/"+sz, 0.15)
	}
	// Peak RSS of every bb step, per bottle.
	for _, b := range e.bottles {
		var peak int64
		var which string
		for _, s := range e.rep.Steps {
			if s.Issue == 2 && s.Tool == "bb" && s.Median != nil && strings.HasSuffix(s.ID, "/"+b.Size) && s.Median.RSSKiB > peak {
				peak, which = s.Median.RSSKiB, s.Name
			}
		}
		if peak > 0 {
			v := float64(peak) / 1024
			ts = append(ts, target{Issue: 2, Label: fmt.Sprintf("bb peak RSS, %s bottle (%s of tar; largest: %s)", b.Size, human(b.TarBytes), which), Value: v, Limit: 100, Unit: "MiB", Pass: v <= 100})
		}
	}
	speedRatio(3, "bb export MB/s ÷ cat of the same blobs", "bb-export", "cat-blobs", 0.9)
	speedRatio(3, "bb export MB/s ÷ cat of the same blobs + sync (bb export syncs its output)", "bb-export", "cat-sync-blobs", 0.9)
	speedRatio(3, "bb push MB/s ÷ curl upload of the same blobs", "bb-push", "curl-push", 0.9)
	for _, id := range []string{"serve-rss"} {
		if s := e.step(id); s != nil {
			v := float64(s.Median.RSSKiB) / 1024
			ts = append(ts, target{Issue: 3, Label: "bb serve peak RSS while serving the snapshot " + fmt.Sprint(e.cfg.Runs) + "× (flat: " + s.Note + ")", Value: v, Limit: 100, Unit: "MiB", Pass: v <= 100})
		}
	}
	timeRatio(4, "bb commit (stand-in: stream, store, serve, pack) ÷ seed smolvm pipeline (with the stand-in's pack)", "smol-bb", "smol-seed", 0.1)
	if a, b := e.step("smol-bb-store"), e.step("smol-seed"); a != nil && b != nil {
		den := b.Median.Wall - b.Median.Stages["6 smolvm pack create"]
		if den > 0 {
			v := a.Median.Wall / den
			ts = append(ts, target{Issue: 4, Label: "bb commit --no-load ÷ seed pipeline without its pack step (stream → image in a registry)", Value: v, Limit: 0.1, Unit: "×", Pass: v <= 0.1})
		}
	}
	if e.cfg.Issues[10] {
		ts = append(ts, e.issue10Targets()...)
	}
	return ts
}

// issue10Targets lists every target issue 10 names, side by side, in
// one table: a target whose steps did not run in this run (Docker with
// BENCH_ISSUES=10, scale with BENCH_ONLY=incremental) is listed as not
// measured rather than left out.
func (e *benchEnv) issue10Targets() []target {
	var ts []target
	ratio := func(label, num, den string, limit float64, size bool) {
		t := target{Issue: 10, Label: label, Limit: limit, Unit: "×"}
		a, b := e.step(num), e.step(den)
		switch {
		case a == nil || b == nil:
			t.Missing = true
		case size && b.Median.Out > 0:
			t.Value = float64(a.Median.Out) / float64(b.Median.Out)
		case !size && b.Median.Wall > 0:
			t.Value = a.Median.Wall / b.Median.Wall
		default:
			t.Missing = true
		}
		t.Pass = !t.Missing && t.Value <= limit
		ts = append(ts, t)
	}
	ratio("Docker (1 GB bottle): bb commit --no-load (incremental) ÷ docker commit", "commit-store-warm/1g", "docker-commit/1g", 1.0, false)
	ratio("Docker (1 GB bottle): bb commit + load (incremental) ÷ docker load of the diff layer alone", "commit-load-warm/1g", "docker-load-diff/1g", 1.25, false)
	for _, b := range []struct{ id, name string }{
		{"dir", "dir backend"}, {"container", "container stand-in, --no-load"}, {"container-load", "container stand-in + image load"},
		{"smol", "smolvm stand-in, --no-load"}, {"smol-pack", "smolvm stand-in + flatten, serve, pack"},
	} {
		ratio(b.name+": second commit ÷ first commit", "incr10-second-"+b.id, "incr10-first-"+b.id, 0.3, false)
		ratio(b.name+": second commit's new layer ÷ the change as tar | gzip -1", "incr10-second-"+b.id, "incr10-gzip", 1.2, true)
	}
	ratio("push of the second snapshot to a registry that has the first: bytes stored ÷ its new layer (dir)", "incr10-push", "incr10-second-dir", 1.3, true)
	ts = append(ts, e.linearity()...)
	for _, id := range []string{"incr10-first-dir", "incr10-second-dir", "incr10-scale-big-small", "incr10-scale-big",
		"incr10-scale-files-small", "incr10-scale-files", "incr10-scale-files-incr-small", "incr10-scale-files-incr"} {
		if s := e.step(id); s != nil {
			v := float64(s.Median.RSSKiB) / 1024
			ts = append(ts, target{Issue: 10, Label: "bb peak RSS: " + s.Name, Value: v, Limit: 100, Unit: "MiB", Pass: v <= 100})
		} else if strings.Contains(id, "scale") && !strings.HasSuffix(id, "-small") {
			ts = append(ts, target{Issue: 10, Label: "bb peak RSS: " + id, Limit: 100, Unit: "MiB", Missing: true})
		}
	}
	return ts
}

// linearity compares the time per byte (per entry for the many-files
// trees) of each scale step with that of its tree a tenth of the size:
// 1.0× is linear growth.
func (e *benchEnv) linearity() []target {
	var ts []target
	for _, c := range []struct{ big, small, unit string }{
		{"incr10-scale-big", "incr10-scale-big-small", "byte"},
		{"incr10-scale-files", "incr10-scale-files-small", "entry"},
		{"incr10-scale-files-incr", "incr10-scale-files-incr-small", "entry"},
	} {
		a, b := e.step(c.big), e.step(c.small)
		if a == nil || b == nil || a.Median.Wall == 0 || b.Median.Wall == 0 {
			ts = append(ts, target{Issue: 10, Label: "linear growth: time per " + c.unit + ", " + c.big + " ÷ " + c.small, Limit: 1.2, Unit: "×", Missing: true})
			continue
		}
		na, nb := float64(a.Basis), float64(b.Basis)
		if c.unit == "entry" {
			na, nb = float64(a.Entries), float64(b.Entries)
		}
		if na == 0 || nb == 0 {
			continue
		}
		v := (a.Median.Wall / na) / (b.Median.Wall / nb)
		label := fmt.Sprintf("linear growth: time per %s, %s ÷ %s (%.1f s ÷ %.1f s for %.1f× the size)", c.unit, a.Name, b.Name, a.Median.Wall, b.Median.Wall, na/nb)
		ts = append(ts, target{Issue: 10, Label: label, Value: v, Limit: 1.2, Unit: "×", Pass: v <= 1.2})
	}
	return ts
}

func mbps(s *step) float64 {
	if s.Median == nil || s.Median.Wall == 0 {
		return 0
	}
	n := s.Basis
	if n == 0 {
		n = s.Median.Out
	}
	return float64(n) / 1e6 / s.Median.Wall
}

func renderMarkdown(rep *report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# bb benchmark\n\n")
	fmt.Fprintf(&b, "Load average at start %s, at end %s (other work on the machine skews the numbers).\n\n", rep.Host["loadavg_start"], rep.Host["loadavg_end"])
	fmt.Fprintf(&b, "%s; %s CPUs, %s RAM, dockerd %s (%s), kernel %s, %s. Median of %d runs per step (round robin); peak RSS is the largest of the runs, of the measured process and its children (wait4), dockerd excluded. MB = 10^6 bytes. Page cache warm (the bottle is read once before the runs).\n\n",
		rep.Started.Format("2006-01-02 15:04 UTC"), rep.Host["cpus"], rep.Host["memory"], rep.Host["dockerd"], rep.Host["storage_driver"], rep.Host["kernel"], rep.Host["go"], rep.Runs)
	if len(rep.Bottles) > 0 {
		fmt.Fprintf(&b, "| bottle | size as tar | entries | image |\n|---|---:|---:|---|\n")
		for _, bt := range rep.Bottles {
			fmt.Fprintf(&b, "| %s | %s | %d | %s |\n", bt.Name, human(bt.TarBytes), bt.Entries, bt.Image)
		}
		b.WriteString("\n")
	}
	issues := []int{}
	for _, s := range rep.Steps {
		if !slices.Contains(issues, s.Issue) {
			issues = append(issues, s.Issue)
		}
	}
	for _, is := range issues {
		fmt.Fprintf(&b, "## %s\n\n", issueTitles[is])
		var groups []string
		for _, s := range rep.Steps {
			if s.Issue == is && !slices.Contains(groups, s.Group) {
				groups = append(groups, s.Group)
			}
		}
		for _, g := range groups {
			fmt.Fprintf(&b, "### %s\n\n", g)
			var ref *step
			for _, s := range rep.Steps {
				if s.Issue == is && s.Group == g && s.Ref && s.Median != nil {
					ref = s
				}
			}
			fmt.Fprintf(&b, "| tool | median s | MB/s | output | peak RSS | time ÷ bb |\n|---|---:|---:|---:|---:|---:|\n")
			var notes, skips []string
			for _, s := range rep.Steps {
				if s.Issue != is || s.Group != g {
					continue
				}
				name := strings.ReplaceAll(s.Name, "|", `\|`)
				switch {
				case s.Skip != "":
					fmt.Fprintf(&b, "| %s | skipped | | | | |\n", name)
					if !slices.Contains(skips, s.Skip) {
						skips = append(skips, s.Skip)
					}
					continue
				case s.Median == nil:
					msg := s.Err
					if msg == "" {
						msg = "not run"
					}
					fmt.Fprintf(&b, "| %s | failed | | | | |\n", name)
					notes = append(notes, fmt.Sprintf("%s: failed: %s", name, msg))
					continue
				}
				m := s.Median
				rss := mib(m.RSSKiB)
				if s.Daemon {
					rss += " (+dockerd)"
				}
				ratio := ""
				if ref != nil && ref.Median.Wall > 0 {
					ratio = fmt.Sprintf("%.2f×", m.Wall/ref.Median.Wall)
				}
				if s.RSSOnly {
					fmt.Fprintf(&b, "| %s | | | | %s | |\n", name, rss)
				} else {
					fmt.Fprintf(&b, "| %s | %.2f | %.0f | %s | %s | %s |\n", name, m.Wall, mbps(s), human(m.Out), rss, ratio)
				}
				if len(m.Stages) > 0 {
					var parts []string
					for k, v := range m.Stages {
						parts = append(parts, fmt.Sprintf("%s %.1f s", k, v))
					}
					slices.Sort(parts)
					notes = append(notes, fmt.Sprintf("%s: %s", name, strings.Join(parts, ", ")))
				}
				if s.Note != "" {
					notes = append(notes, name+": "+s.Note)
				}
			}
			b.WriteString("\n")
			for _, sk := range skips {
				notes = append(notes, "skipped: "+sk)
			}
			for _, n := range notes {
				fmt.Fprintf(&b, "- %s\n", n)
			}
			if len(notes) > 0 {
				b.WriteString("\n")
			}
		}
		var ts []target
		for _, t := range rep.Targets {
			if t.Issue == is {
				ts = append(ts, t)
			}
		}
		if len(ts) > 0 {
			if is == 10 {
				b.WriteString("Every target of the issue, side by side (\"not run\": this run left its steps out; Docker's are measured by BENCH_ISSUES=2).\n\n")
			}
			fmt.Fprintf(&b, "Targets:\n\n| target | measured | limit | |\n|---|---:|---:|---|\n")
			for _, t := range ts {
				op := "≤"
				if t.AtMin {
					op = "≥"
				}
				ok := "met"
				if !t.Pass {
					ok = "**missed**"
				}
				lim := fmt.Sprintf("%s %.2f%s", op, t.Limit, t.Unit)
				if t.Unit == "MiB" {
					lim = fmt.Sprintf("%s %.0f MiB", op, t.Limit)
				}
				if t.Missing {
					fmt.Fprintf(&b, "| %s | not measured in this run | %s | not run |\n", strings.ReplaceAll(t.Label, "|", `\|`), lim)
					continue
				}
				val := fmt.Sprintf("%.2f%s", t.Value, t.Unit)
				if t.Unit == "MiB" {
					val = fmt.Sprintf("%.0f MiB", t.Value)
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", strings.ReplaceAll(t.Label, "|", `\|`), val, lim, ok)
			}
			b.WriteString("\n")
		}
	}
	if len(rep.Notes) > 0 {
		b.WriteString("Notes:\n\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "Total bench time %.0f s. Raw data: .bench/results.json.\n", rep.Duration)
	return b.String()
}

func human(n int64) string {
	switch {
	case n == 0:
		return "-"
	case n < 0:
		return "-" + human(-n)
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.0f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.0f kB", float64(n)/1e3)
	}
}

func mib(kib int64) string {
	if kib == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(kib)/1024)
}
