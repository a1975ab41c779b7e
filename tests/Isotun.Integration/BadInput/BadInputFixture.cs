using System.Globalization;
using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Integration.Interop;
using Isotun.Lab;

namespace Isotun.Integration.BadInput;

/// <summary>
/// The bad-input suite's own lab (tag "bi", index 9: underlay 198.18.18.0/24, service 198.18.19.0/24), built
/// with the same <see cref="DemoLab"/> as `isotun lab up`. Its client stays connected throughout and is the
/// witness that no misbehaving peer touches another session. Handshake timeout 5 s, auth timeout 15 s.
/// </summary>
public sealed class BadInputFixture : DemoLabFixture
{
    public BadInputFixture() : base("bi", 9, TimeSpan.FromSeconds(90))
    {
        if (Lab is null) return;
        WitnessAddress = Lab.ClientAddress() ?? throw new InvalidOperationException("the lab client has no address");
        ServerPid = LabProcess.Pid(Layout, "server") ?? throw new InvalidOperationException("the lab server has no PID");
    }

    /// <summary>The lab client's tunnel address at the start; it must never change.</summary>
    public IPAddress WitnessAddress { get; } = IPAddress.None;
    public int ServerPid { get; }


    /// <summary>Lines of the lab client's log that say its connection was lost.</summary>
    public int WitnessLosses() => LogLines("client").Count(l => l.Contains("connection lost"));
}

[CollectionDefinition(Name)]
public sealed class BadInputCollection : ICollectionFixture<BadInputFixture>
{
    public const string Name = "bad-input";
}
