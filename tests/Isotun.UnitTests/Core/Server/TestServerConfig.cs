using Isotun.Server.Configuration;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Core.Server;

/// <summary>The server config the unit tests start from: a loopback listener, PKI generated under pki/, no admin listener.</summary>
internal static class TestServerConfig
{
    /// <summary>Writes <c>isotun.yaml</c> in <paramref name="dir"/> with <paramref name="sections"/> (top-level YAML) after the common part.</summary>
    /// <param name="adminSocket">The admin socket (admin.socket), or its default beside the state file.</param>
    public static string Write(TempDirectory dir, string sections, int port = 4443, string? adminSocket = null)
    {
        var path = dir.File("isotun.yaml");
        File.WriteAllText(path, $"""
            listen: 127.0.0.1:{port}
            tls:
              certificate: pki/server.crt
              key: pki/server.key
            admin:
              listen: off
            {(adminSocket is null ? "" : "  socket: " + adminSocket)}

            """ + sections);
        return path;
    }

    /// <summary>Loads a config that must be valid.</summary>
    public static ServerConfig Load(string path)
    {
        var loaded = ServerConfigLoader.Load(path);
        Assert.True(loaded.Ok, string.Join("\n", loaded.Errors));
        return loaded.Config!;
    }
}
