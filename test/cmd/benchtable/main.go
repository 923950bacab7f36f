// Command benchtable reads `go test -bench` output on stdin (several runs of
// each benchmark, ideally interleaved) and prints each benchmark's median
// time per operation and its ratio to a baseline benchmark.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

func main() {
	base := flag.String("base", "", "benchmark name (without the -N suffix) that ratios are relative to")
	flag.Parse()
	runs := map[string][]float64{}
	var order []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || f[3] != "ns/op" {
			continue
		}
		ns, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i]
		}
		if _, seen := runs[name]; !seen {
			order = append(order, name)
		}
		runs[name] = append(runs[name], ns)
	}
	if len(order) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no benchmark lines on stdin")
		os.Exit(1)
	}
	baseline := median(runs[*base])
	fmt.Printf("| %-28s | %5s | %12s | %12s |\n", "benchmark", "runs", "median ms/op", "× "+*base)
	fmt.Printf("|%s|%s|%s|%s|\n", strings.Repeat("-", 30), strings.Repeat("-", 7), strings.Repeat("-", 14), strings.Repeat("-", 14))
	for _, name := range order {
		m := median(runs[name])
		ratio := "-"
		if baseline > 0 {
			ratio = fmt.Sprintf("%.2f", m/baseline)
		}
		fmt.Printf("| %-28s | %5d | %12.2f | %12s |\n", name, len(runs[name]), m/1e6, ratio)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
