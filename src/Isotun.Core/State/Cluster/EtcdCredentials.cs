namespace Isotun.State.Cluster;

/// <summary>
/// The user an <see cref="EtcdKeyValueStore"/> logs in to etcd as, when etcd has authentication on
/// (<c>etcdctl auth enable</c>). The password comes from a file that only its owner may read, and never appears in a
/// message or a log (<see cref="ToString"/> leaves it out).
/// </summary>
public sealed record EtcdCredentials(string User, string Password)
{
    public override string ToString() => $"etcd user {User}";

    /// <summary>Reads the password from the first line of <paramref name="passwordFile"/>.</summary>
    /// <exception cref="InvalidOperationException">The file is readable by group or others, or holds no password.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static EtcdCredentials Load(string user, string passwordFile)
    {
        if (Isotun.Security.SecretFile.OpenToOthers(passwordFile))
            throw new InvalidOperationException($"{passwordFile}: the etcd password must not be readable by group or others (chmod 600)");
        var password = File.ReadLines(passwordFile).FirstOrDefault()?.TrimEnd('\r') ?? "";
        if (password.Length == 0) throw new InvalidOperationException($"{passwordFile}: no password on its first line");
        return new EtcdCredentials(user, password);
    }
}
