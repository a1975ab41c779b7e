using System.Globalization;

namespace Isotun.Doctor;

public enum FindingLevel { Ok, Info, Warn }

/// <summary>One line of the doctor's report: what was looked at, what was found, and what to change (warnings).</summary>
public sealed record Finding(string Check, FindingLevel Level, string Found, string? Advice = null);

/// <summary>
/// `isotun doctor`: walks the throughput checklist on the host it runs on (in the network namespace it runs in),
/// in the order a slow tunnel is best looked into: the TUN, the path and its MTU, the NIC's queues, the crypto
/// instructions, where receive interrupts land, and what kind of NIC the VM was given. It reads /proc, /sys
/// and /dev only, and changes nothing.
/// </summary>
public static class HostDoctor
{
    /// <summary>Encapsulating devices: each takes bytes off every packet that crosses it.</summary>
    private static readonly HashSet<string> Encapsulating = ["vxlan", "geneve", "gre", "gretap", "ip6gre", "ip6gretap", "ipip", "sit", "ip6tnl", "wireguard"];

    /// <summary>ARPHRD_* numbers of tunnels that carry no DEVTYPE in their uevent.</summary>
    private static readonly Dictionary<long, string> TunnelTypes = new() { [768] = "ipip", [769] = "ip6tnl", [776] = "sit", [778] = "gre", [823] = "ip6gre" };

    /// <summary>Emulated NIC models: every packet costs the hypervisor a device emulation.</summary>
    private static readonly HashSet<string> Emulated = ["e1000", "e1000e", "8139cp", "8139too", "ne2k-pci", "pcnet32", "tulip"];

    /// <summary>Paravirtual NICs and SR-IOV virtual functions.</summary>
    private static readonly HashSet<string> Fast = ["virtio_net", "vmxnet3", "ena", "gve", "hv_netvsc", "xen-netfront", "ixgbevf", "iavf", "i40evf", "mlx4_core", "mlx5_core", "bnxt_en", "ice"];

    /// <summary>A network interface as /sys shows it.</summary>
    public sealed record Interface(string Name, string Kind, long Mtu, bool Up, string? Driver, int RxQueues, string? Rps0);

    /// <summary>How long the receive softirqs are watched: what the host does now, not since it booted.</summary>
    public static readonly TimeSpan InterruptSample = TimeSpan.FromSeconds(1);

    /// <param name="tenantMtu">The tenants' `mtu`, when known: then every uplink candidate is checked against it.</param>
    /// <param name="wait">Waits out <see cref="InterruptSample"/> between the two reads of the softirq counters (a test's
    /// stand-in changes them meanwhile); <see cref="Thread.Sleep(TimeSpan)"/> by default.</param>
    public static IReadOnlyList<Finding> Examine(HostView host, int? tenantMtu = null, Action<TimeSpan>? wait = null)
    {
        var cpuinfo = CpuInfo(host);
        int cores = Cores(cpuinfo);
        var interfaces = Interfaces(host);
        return [Tun(host), .. Mtu(interfaces, tenantMtu), .. Queues(interfaces, cores), Crypto(cpuinfo, cores), Interrupts(host, cores, wait ?? Thread.Sleep), .. Nics(interfaces)];
    }

    public static int Cores(HostView host) => Cores(CpuInfo(host));

    private static string[] CpuInfo(HostView host) => (host.Read("/proc/cpuinfo") ?? "").Split('\n');

    private static int Cores(string[] cpuinfo) =>
        Math.Max(1, cpuinfo.Count(l => l.StartsWith("processor", StringComparison.Ordinal) && l.Contains(':')));

    /// <summary>Every interface but loopback, with what the checks need.</summary>
    public static IReadOnlyList<Interface> Interfaces(HostView host)
    {
        var list = new List<Interface>();
        foreach (var name in host.List("/sys/class/net"))
        {
            string dir = $"/sys/class/net/{name}";
            if (name == "lo" || !host.Exists($"{dir}/mtu")) continue;
            var queues = host.List($"{dir}/queues");
            list.Add(new Interface(
                name,
                Kind(host, dir),
                host.ReadNumber($"{dir}/mtu") ?? 0,
                host.Read($"{dir}/operstate") is "up" or "unknown",
                host.LinkName($"{dir}/device/driver"),
                queues.Count(q => q.StartsWith("rx-", StringComparison.Ordinal)),
                host.Read($"{dir}/queues/rx-0/rps_cpus")));
        }
        return list;
    }

    private static string Kind(HostView host, string dir)
    {
        if (host.Exists($"{dir}/tun_flags")) return "tun";
        if (host.Exists($"{dir}/bridge")) return "bridge";
        var devtype = (host.Read($"{dir}/uevent") ?? "").Split('\n').FirstOrDefault(l => l.StartsWith("DEVTYPE=", StringComparison.Ordinal));
        if (devtype is not null) return devtype["DEVTYPE=".Length..].Trim();
        if (host.ReadNumber($"{dir}/type") is long type && TunnelTypes.TryGetValue(type, out var tunnel)) return tunnel;
        return host.Exists($"{dir}/device") ? "nic" : "virtual";
    }

    private static Finding Tun(HostView host)
    {
        var release = host.Read("/proc/sys/kernel/osrelease") ?? "unknown";
        if (!host.Exists("/dev/net/tun"))
            return new("tun", FindingLevel.Warn, "/dev/net/tun is missing", "load the tun module (modprobe tun), or give the container the device (/dev/net/tun, c 10:200)");
        var parts = release.Split('.', '-');
        bool uso = parts.Length >= 2 && int.TryParse(parts[0], out int major) && int.TryParse(parts[1], out int minor) && (major, minor).CompareTo((6, 2)) >= 0;
        return uso
            ? new("tun", FindingLevel.Ok, $"/dev/net/tun; kernel {release}: TCP and UDP super-packets (TSO, USO)")
            : new("tun", FindingLevel.Info, $"/dev/net/tun; kernel {release}: TCP super-packets only (USO needs 6.2): UDP is cut into datagrams");
    }

    private static IEnumerable<Finding> Mtu(IReadOnlyList<Interface> interfaces, int? tenantMtu)
    {
        var small = interfaces.Where(i => i.Up && i.Kind != "tun" && i.Mtu is > 0 and < 1500).ToList();
        foreach (var i in small)
        {
            string what = Encapsulating.Contains(i.Kind)
                ? $"{i.Name} ({i.Kind}) carries {i.Mtu}-byte packets: {1500 - i.Mtu} bytes go to its encapsulation"
                : $"{i.Name} carries {i.Mtu}-byte packets: an overlay underneath (the hypervisor's) takes {1500 - i.Mtu} bytes";
            // Given the tenant's mtu, and it fits: said, not warned of (a host tuned as advised reaches exit 0).
            if (tenantMtu is int fits && fits <= i.Mtu)
                yield return new("mtu", FindingLevel.Ok, $"{what}; the tenant mtu {fits} fits");
            else
                yield return new("mtu", FindingLevel.Warn, what,
                    $"the TLS underlay adapts (TCP), but a tenant whose uplink crosses {i.Name} needs `mtu` at most {i.Mtu} to avoid fragmentation; Isotun clamps TCP MSS to the tenant MTU");
        }
        if (tenantMtu is int mtu)
        {
            foreach (var i in interfaces.Where(i => i.Up && i.Kind != "tun" && i.Mtu >= 1500 && i.Mtu < mtu))
                yield return new("mtu", FindingLevel.Warn, $"{i.Name} carries {i.Mtu}-byte packets, below the tenant mtu {mtu}", $"lower the tenant `mtu` to {i.Mtu}, or raise {i.Name}'s MTU");
        }
        if (small.Count == 0)
        {
            var up = interfaces.Where(i => i.Up && i.Kind != "tun").Select(i => $"{i.Name} {i.Mtu}").ToList();
            yield return new("mtu", FindingLevel.Ok, up.Count == 0 ? "no interface up but loopback" : "no path under 1500 bytes: " + string.Join(", ", up));
        }
    }

    private static IEnumerable<Finding> Queues(IReadOnlyList<Interface> interfaces, int cores)
    {
        var nics = interfaces.Where(i => i.Kind == "nic" && i.Up).ToList();
        if (nics.Count == 0)
        {
            yield return new("queues", FindingLevel.Info, "no physical or virtual NIC in this namespace (only veth, bridges and tunnels): look at the host's NIC");
            yield break;
        }
        foreach (var nic in nics)
        {
            // A mask of one CPU moves the work to that CPU, and spreads nothing.
            bool rps = nic.Rps0 is { } mask && CpusIn(mask) >= 2;
            // Several queues already spread the work over as many cores; a single one is the classic bottleneck.
            if (cores == 1 || nic.RxQueues > 1)
                yield return new("queues", FindingLevel.Ok, $"{nic.Name}: {nic.RxQueues} receive queue{(nic.RxQueues == 1 ? "" : "s")} for {cores} CPU{(cores == 1 ? "" : "s")}");
            else if (rps)
                yield return new("queues", FindingLevel.Ok, $"{nic.Name}: 1 receive queue for {cores} CPUs, spread by RPS (mask {nic.Rps0})");
            else
                yield return new("queues", FindingLevel.Warn, $"{nic.Name}: 1 receive queue for {cores} CPUs and no RPS: one core takes all the receive work",
                    $"give the NIC a queue per CPU (ethtool -L {nic.Name} combined {cores}; for virtio-net also queues={cores} on the hypervisor), " +
                    $"or spread it with RPS: echo {AllCpus(cores)} > /sys/class/net/{nic.Name}/queues/rx-0/rps_cpus");
        }
    }

    /// <summary>The RPS mask naming CPUs 0…cores-1, as /sys writes it (hex, comma every 32 bits).</summary>
    public static string AllCpus(int cores)
    {
        var words = new List<string>();
        for (int left = cores; left > 0; left -= 32)
            words.Add((left >= 32 ? uint.MaxValue : (1u << left) - 1).ToString(left > 32 ? "x8" : "x", CultureInfo.InvariantCulture));
        words.Reverse();
        return string.Join(",", words);
    }

    private static Finding Crypto(string[] cpuinfo, int cores)
    {
        var flags = Words(cpuinfo, "flags");
        var features = Words(cpuinfo, "Features");
        string cpus = $"{cores} CPU{(cores == 1 ? "" : "s")}";
        if (flags.Contains("aes"))
            return new("crypto", FindingLevel.Ok, $"{cpus} with AES-NI{(flags.Contains("vaes") ? " and VAES" : "")}{(flags.Contains("pclmulqdq") ? ", PCLMULQDQ (fast AES-GCM)" : "")}");
        if (features.Contains("aes") && features.Contains("pmull"))
            return new("crypto", FindingLevel.Ok, $"{cpus} with the ARMv8 crypto extensions (AES, PMULL)");
        return new("crypto", FindingLevel.Warn, $"{cpus}, no AES instructions visible: TLS encrypts every byte in software",
            "give the VM the host's CPU model (or one with aes and pclmulqdq), so AES-GCM runs in hardware");
    }

    private static HashSet<string> Words(string[] cpuinfo, string key)
    {
        var line = cpuinfo.FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal) && l.Contains(':'));
        return line is null ? [] : [.. line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)];
    }

    /// <summary>How many CPUs an RPS mask (hex words, comma separated, as /sys shows it) names; 0 when it is not one.</summary>
    internal static int CpusIn(string mask)
    {
        int cpus = 0;
        foreach (char c in mask.Trim())
        {
            if (c == ',') continue;
            if (!char.IsAsciiHexDigit(c)) return 0;
            cpus += System.Numerics.BitOperations.PopCount((uint)Convert.ToInt32(c.ToString(), 16));
        }
        return cpus;
    }

    /// <summary>The NET_RX counts per CPU, or null when the file or the row cannot be read.</summary>
    private static long[]? ReceiveSoftirqs(HostView host)
    {
        var row = (host.Read("/proc/softirqs") ?? "").Split('\n').FirstOrDefault(l => l.TrimStart().StartsWith("NET_RX:", StringComparison.Ordinal));
        return row?.Split(':', 2)[1].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(v => long.TryParse(v, out long n) ? n : 0).ToArray();
    }

    /// <summary>Fewer receive softirqs than this over the sample say too little about now: the counts since boot are judged.</summary>
    private const long MinSampled = 1000;

    private static Finding Interrupts(HostView host, int cores, Action<TimeSpan> wait)
    {
        bool irqbalance = host.ProcessNames().Any(n => n == "irqbalance");
        string balancer = irqbalance ? "irqbalance runs" : "irqbalance does not run";
        if (ReceiveSoftirqs(host) is not { } sinceBoot)
            return new("interrupts", FindingLevel.Info, $"/proc/softirqs unreadable; {balancer}");
        // Counted from boot, a skew the operator has since fixed (more queues, RPS, irqbalance) would show for weeks, and
        // one that began lately would hide: what counts is the share over the sample, when there was traffic enough.
        var counts = sinceBoot;
        string over = "since boot, little receive traffic now";
        if (cores > 1 && sinceBoot.Length > 1)
        {
            wait(InterruptSample);
            if (ReceiveSoftirqs(host) is { } later && later.Length == sinceBoot.Length
                && later.Zip(sinceBoot, (a, b) => Math.Max(0, a - b)).ToArray() is var sampled && sampled.Sum() >= MinSampled)
                (counts, over) = (sampled, $"over {InterruptSample.TotalSeconds:0.#} s");
        }
        long total = counts.Sum();
        if (cores == 1 || counts.Length < 2 || total == 0)
            return new("interrupts", FindingLevel.Ok, $"receive softirqs: {total} on {counts.Length} CPU{(counts.Length == 1 ? "" : "s")}; {balancer}");
        int busiest = Array.IndexOf(counts, counts.Max());
        double share = (double)counts[busiest] / total;
        string found = $"receive softirqs: {share * 100:0}% on CPU {busiest} of {counts.Length} ({over}); {balancer}";
        return share > 0.9
            ? new("interrupts", FindingLevel.Warn, found, "spread them: run irqbalance, give the NIC more queues, or set RPS (see queues)")
            : new("interrupts", FindingLevel.Ok, found);
    }

    private static IEnumerable<Finding> Nics(IReadOnlyList<Interface> interfaces)
    {
        foreach (var nic in interfaces.Where(i => i.Kind == "nic" && i.Driver is not null))
        {
            if (Emulated.Contains(nic.Driver!))
                yield return new("nic", FindingLevel.Warn, $"{nic.Name}: {nic.Driver}, an emulated NIC: the hypervisor emulates a device for every packet",
                    "give the VM a virtio-net NIC (with vhost-net on the host), or pass a virtual function through with SR-IOV");
            else if (Fast.Contains(nic.Driver!))
                yield return new("nic", FindingLevel.Ok, $"{nic.Name}: {nic.Driver} (paravirtual or SR-IOV)");
            else
                yield return new("nic", FindingLevel.Info, $"{nic.Name}: {nic.Driver}");
        }
    }
}
