using System.Globalization;
using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;

namespace Isotun.Integration.DataPath;

/// <summary>
/// The data-path suite's own lab (tag "dp", index 10: underlay 198.18.20.0/24, service 198.18.21.0/24), built with
/// the same <see cref="DemoLab"/> as `isotun lab up`: isotun connect and isotun server with their defaults, so the
/// lab's client negotiates batching and GSO. It stays connected throughout and witnesses that no other case hurts it.
/// </summary>
public sealed class DataPathFixture : DemoLabFixture
{
    public DataPathFixture() : base("dp", 10, TimeSpan.FromSeconds(90))
    {
        if (Lab is null) return;
        ClientAddress = Lab.ClientAddress() ?? throw new InvalidOperationException("the lab client has no address");
    }

    public IPAddress ClientAddress { get; } = IPAddress.None;

    /// <summary>A webvpn cookie for a fresh session, from `isotun connect --authenticate` in the client namespace.</summary>
    public string Cookie()
    {
        var auth = Run.Isotun(Layout.ClientNs, ["connect", Layout.ServerUrl.ToString(), "--authenticate", "--user", LabLayout.User, "--passwd-on-stdin", "--servercert", Pin], stdin: Password + "\n");
        Assert.True(auth.ExitCode == 0, auth.ToString());
        return auth.Cookie();
    }
}

[CollectionDefinition(Name)]
public sealed class DataPathCollection : ICollectionFixture<DataPathFixture>
{
    public const string Name = "data-path";
}
