using Isotun.Doctor;

namespace Isotun.UnitTests.Doctor;

/// <summary>
/// `isotun doctor` on stand-in hosts: a folder laid out as /proc, /sys and /dev, one problem at a time, and on
/// the real host it runs on.
/// </summary>
public sealed class HostDoctorTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("isotun-doctor-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Write(string path, string text)
    {
        var full = Path.Combine(_root, path.TrimStart('/'));
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, text + "\n");
    }

    /// <summary>A host with nothing to change: 2 CPUs with AES-NI, a virtio NIC with 2 queues, kernel 6.8.</summary>
    private HostDoctorTests WellTuned()
    {
        Write("/dev/net/tun", "");
        Write("/proc/sys/kernel/osrelease", "6.8.0-45-generic");
        Write("/proc/cpuinfo", Cpu(0, "fpu sse2 aes pclmulqdq avx2") + "\n" + Cpu(1, "fpu sse2 aes pclmulqdq avx2"));
        Write("/proc/softirqs", "                    CPU0       CPU1\n          HI:          0          0\n      NET_RX:     500000     450000\n");
        Write("/proc/812/comm", "irqbalance");
        Nic("eth0", 1500, "virtio_net", queues: 2);
        return this;
    }

    private static string Cpu(int n, string flags) => $"processor\t: {n}\nmodel name\t: Test CPU\nflags\t\t: {flags}\n";

    private void Nic(string name, int mtu, string? driver, int queues = 1, string rps = "0", string? devtype = null, int type = 1)
    {
        string dir = $"/sys/class/net/{name}";
        Write($"{dir}/mtu", mtu.ToString());
        Write($"{dir}/operstate", "up");
        Write($"{dir}/type", type.ToString());
        Write($"{dir}/uevent", $"INTERFACE={name}\nIFINDEX=4" + (devtype is null ? "" : $"\nDEVTYPE={devtype}"));
        for (int q = 0; q < queues; q++)
        {
            Write($"{dir}/queues/rx-{q}/rps_cpus", rps);
            Write($"{dir}/queues/tx-{q}/xps_cpus", "0");
        }
        if (driver is null) return;
        Write($"/sys/bus/drivers/{driver}/.keep", "");
        Directory.CreateDirectory(Path.Combine(_root, $"sys/class/net/{name}/device"));
        File.Delete(Path.Combine(_root, $"sys/class/net/{name}/device/driver"));
        File.CreateSymbolicLink(Path.Combine(_root, $"sys/class/net/{name}/device/driver"), Path.Combine(_root, $"sys/bus/drivers/{driver}"));
    }

    /// <param name="meanwhile">Run while the doctor waits between its two reads of the softirq counters; by default they
    /// do not move (too little traffic to judge now, so the counts since boot are judged).</param>
    private IReadOnlyList<Finding> Examine(int? mtu = null, Action? meanwhile = null) =>
        HostDoctor.Examine(new HostView(_root), mtu, wait: _ => meanwhile?.Invoke());

    private static Finding Only(IReadOnlyList<Finding> findings, FindingLevel level) =>
        Assert.Single(findings, f => f.Level == level);

    [Fact]
    public void A_well_tuned_host_has_nothing_to_change_and_every_check_reports()
    {
        var findings = WellTuned().Examine();
        Assert.All(findings, f => Assert.Equal(FindingLevel.Ok, f.Level));
        Assert.Equal(["tun", "mtu", "queues", "crypto", "interrupts", "nic"], findings.Select(f => f.Check));
        Assert.Contains("TSO, USO", findings[0].Found);
        Assert.Contains("AES-NI", findings[3].Found);
        Assert.Contains("irqbalance runs", findings[4].Found);
        Assert.Contains("eth0: virtio_net", findings[5].Found);
    }

    [Fact]
    public void A_missing_tun_device_is_a_warning_and_an_old_kernel_is_told_it_has_no_uso()
    {
        WellTuned();
        Write("/proc/sys/kernel/osrelease", "5.15.0-1-cloud");
        Assert.Contains("USO needs 6.2", Assert.Single(Examine(), f => f.Check == "tun" && f.Level == FindingLevel.Info).Found);

        File.Delete(Path.Combine(_root, "dev/net/tun"));
        var tun = Only(Examine(), FindingLevel.Warn);
        Assert.Equal("tun", tun.Check);
        Assert.Contains("modprobe tun", tun.Advice);
    }

    [Theory]
    [InlineData("vxlan0", 1450, "vxlan", 1, "vxlan0 (vxlan) carries 1450-byte packets: 50 bytes go to its encapsulation")]
    [InlineData("gre1", 1476, null, 778, "gre1 (gre) carries 1476-byte packets")]
    [InlineData("ens3", 1400, null, 1, "an overlay underneath (the hypervisor's) takes 100 bytes")]
    public void A_path_under_1500_bytes_says_which_tenant_mtu_fits(string name, int mtu, string? devtype, int type, string found)
    {
        WellTuned().Nic(name, mtu, driver: null, devtype: devtype, type: type);
        var warning = Only(Examine(), FindingLevel.Warn);
        Assert.Equal("mtu", warning.Check);
        Assert.Contains(found, warning.Found);
        Assert.Contains($"`mtu` at most {mtu}", warning.Advice);

        // Given a tenant mtu that fits it, the same path is no warning: a host tuned as advised passes.
        var fits = Examine(mtu).Single(f => f.Check == "mtu");
        Assert.Equal(FindingLevel.Ok, fits.Level);
        Assert.Contains($"the tenant mtu {mtu} fits", fits.Found);
        Assert.Equal(FindingLevel.Warn, Examine(mtu + 1).Single(f => f.Check == "mtu").Level);
    }

    [Fact]
    public void A_tenant_mtu_above_an_interface_mtu_is_a_warning()
    {
        WellTuned();
        Assert.DoesNotContain(Examine(1500), f => f.Level == FindingLevel.Warn);
        var warning = Only(Examine(9000), FindingLevel.Warn);
        Assert.Equal(("mtu", "lower the tenant `mtu` to 1500, or raise eth0's MTU"), (warning.Check, warning.Advice));
    }

    [Fact]
    public void One_receive_queue_without_rps_on_several_cpus_is_a_warning_with_the_mask_to_set()
    {
        WellTuned();
        Write("/proc/cpuinfo", string.Join("\n", Enumerable.Range(0, 4).Select(n => Cpu(n, "aes pclmulqdq"))));
        Write("/proc/softirqs", "      NET_RX:  10  10  10  10\n");
        Nic("eth1", 1500, "virtio_net", queues: 1);
        var warning = Only(Examine(), FindingLevel.Warn);
        Assert.Equal("queues", warning.Check);
        Assert.Contains("eth1: 1 receive queue for 4 CPUs and no RPS", warning.Found);
        Assert.Contains("ethtool -L eth1 combined 4", warning.Advice);
        Assert.Contains("echo f > /sys/class/net/eth1/queues/rx-0/rps_cpus", warning.Advice);

        Nic("eth1", 1500, "virtio_net", queues: 1, rps: "0000000f");
        Assert.DoesNotContain(Examine(), f => f.Level == FindingLevel.Warn);

        // A mask of one CPU moves the receive work there, and spreads nothing.
        Nic("eth1", 1500, "virtio_net", queues: 1, rps: "00000004");
        Assert.Contains("eth1: 1 receive queue for 4 CPUs and no RPS", Only(Examine(), FindingLevel.Warn).Found);
    }

    [Theory]
    [InlineData("0", 0)]
    [InlineData("00000004", 1)]
    [InlineData("00000003", 2)]
    [InlineData("ff,ffffffff", 40)]
    [InlineData("f0,00000000", 4)]
    [InlineData("zz", 0)]
    public void An_rps_mask_is_counted_in_cpus(string mask, int cpus) => Assert.Equal(cpus, HostDoctor.CpusIn(mask));

    /// <summary>What counts is where receive softirqs land now, over the doctor's sample: counts since boot would show a
    /// skew the operator has fixed for weeks, and hide one that began lately.</summary>
    [Fact]
    public void Receive_softirqs_are_judged_over_a_sample_when_there_is_traffic()
    {
        WellTuned();
        File.Delete(Path.Combine(_root, "proc/812/comm"));
        // Skewed since boot, spread now: ok.
        Write("/proc/softirqs", "                    CPU0       CPU1\n      NET_RX:     990000       1000\n");
        var fixedNow = Assert.Single(Examine(meanwhile: () => Write("/proc/softirqs", "      NET_RX:     995000       6000\n")), f => f.Check == "interrupts");
        Assert.Equal(FindingLevel.Ok, fixedNow.Level);
        Assert.Contains("50% on CPU 0 of 2 (over 1 s)", fixedNow.Found);

        // Even since boot, skewed now: a warning.
        Write("/proc/softirqs", "      NET_RX:     500000     500000\n");
        var skewedNow = Only(Examine(meanwhile: () => Write("/proc/softirqs", "      NET_RX:     500010     520000\n")), FindingLevel.Warn);
        Assert.Equal("interrupts", skewedNow.Check);
        Assert.Contains("100% on CPU 1 of 2 (over 1 s)", skewedNow.Found);
    }

    [Fact]
    public void No_aes_instructions_is_a_warning_and_the_arm_crypto_extensions_count()
    {
        WellTuned();
        Write("/proc/cpuinfo", Cpu(0, "fpu sse2 avx2") + "\n" + Cpu(1, "fpu sse2 avx2"));
        var warning = Only(Examine(), FindingLevel.Warn);
        Assert.Equal("crypto", warning.Check);
        Assert.Contains("host's CPU model", warning.Advice);

        Write("/proc/cpuinfo", "processor\t: 0\nFeatures\t: fp asimd aes pmull sha1 sha2\n\nprocessor\t: 1\nFeatures\t: fp asimd aes pmull sha1 sha2\n");
        Assert.Contains("ARMv8 crypto extensions", Assert.Single(Examine(), f => f.Check == "crypto" && f.Level == FindingLevel.Ok).Found);
    }

    [Fact]
    public void Receive_softirqs_on_one_cpu_are_a_warning()
    {
        WellTuned();
        File.Delete(Path.Combine(_root, "proc/812/comm"));
        Write("/proc/softirqs", "                    CPU0       CPU1\n      NET_RX:     990000       1000\n");
        var warning = Only(Examine(), FindingLevel.Warn);
        Assert.Equal("interrupts", warning.Check);
        Assert.Contains("on CPU 0 of 2 (since boot, little receive traffic now); irqbalance does not run", warning.Found);
    }

    [Fact]
    public void An_emulated_nic_is_a_warning_and_an_unknown_driver_is_information()
    {
        WellTuned().Nic("eth1", 1500, "e1000", queues: 2);
        var warning = Only(Examine(), FindingLevel.Warn);
        Assert.Equal("nic", warning.Check);
        Assert.Contains("virtio-net", warning.Advice);

        Directory.Delete(Path.Combine(_root, "sys/class/net/eth1"), recursive: true);
        WellTuned().Nic("eth2", 1500, "r8169", queues: 2);
        Assert.Equal("eth2: r8169", Only(Examine(), FindingLevel.Info).Found);
    }

    [Fact]
    public void A_namespace_with_only_veths_and_tuns_points_at_the_hosts_nic()
    {
        WellTuned();
        Directory.Delete(Path.Combine(_root, "sys/class/net/eth0"), recursive: true);
        Nic("it-c0", 1500, driver: null);
        Nic("isotun0", 1400, driver: null);
        Write("/sys/class/net/isotun0/tun_flags", "0x5002");
        var findings = Examine();
        Assert.DoesNotContain(findings, f => f.Level == FindingLevel.Warn); // the TUN's own 1400 is no path
        Assert.Contains("look at the host's NIC", Assert.Single(findings, f => f.Check == "queues").Found);
        Assert.DoesNotContain(findings, f => f.Check == "nic");
    }

    [Fact]
    public void An_empty_host_gives_findings_not_exceptions()
    {
        var findings = Examine();
        Assert.Equal(["tun", "crypto"], findings.Where(f => f.Level == FindingLevel.Warn).Select(f => f.Check));
        Assert.Contains(findings, f => f.Check == "interrupts" && f.Level == FindingLevel.Info);
        Assert.Contains(findings, f => f.Check == "crypto");
    }

    [Theory]
    [InlineData(1, "1")]
    [InlineData(2, "3")]
    [InlineData(4, "f")]
    [InlineData(12, "fff")]
    [InlineData(32, "ffffffff")]
    [InlineData(40, "ff,ffffffff")]
    [InlineData(64, "ffffffff,ffffffff")]
    public void The_rps_mask_names_every_cpu_as_sys_writes_it(int cores, string mask) =>
        Assert.Equal(mask, HostDoctor.AllCpus(cores));

    [Fact]
    public void The_real_host_is_read_without_errors()
    {
        var findings = HostDoctor.Examine(new HostView("/"));
        foreach (var check in new[] { "tun", "mtu", "queues", "crypto", "interrupts" })
            Assert.Contains(findings, f => f.Check == check);
        Assert.All(findings, f => Assert.False(string.IsNullOrWhiteSpace(f.Found)));
        Assert.All(findings.Where(f => f.Level == FindingLevel.Warn), f => Assert.False(string.IsNullOrWhiteSpace(f.Advice)));
        Assert.Equal(Environment.ProcessorCount, HostDoctor.Cores(new HostView("/")));
    }
}
