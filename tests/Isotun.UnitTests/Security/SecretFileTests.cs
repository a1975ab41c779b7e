using System.Text;
using Isotun.Security;

namespace Isotun.UnitTests.Security;

public class SecretFileTests
{
    [Fact]
    public void WritesWithMode0600()
    {
        using var temp = new TempDirectory();
        var path = temp.File("secret.key");
        SecretFile.WriteAllBytes(path, "k3y"u8, overwrite: false);
        Assert.Equal("k3y", File.ReadAllText(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void RefusesOverwriteByDefault()
    {
        using var temp = new TempDirectory();
        var path = temp.File("secret.key");
        SecretFile.WriteAllText(path, "first", overwrite: false);
        Assert.Throws<IOException>(() => SecretFile.WriteAllText(path, "second", overwrite: false));
        Assert.Equal("first", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(temp.Path));
    }

    [Fact]
    public void OverwriteReplacesAndTightensMode()
    {
        using var temp = new TempDirectory();
        var path = temp.File("secret.key");
        File.WriteAllText(path, "old");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        SecretFile.WriteAllText(path, "new", overwrite: true);
        Assert.Equal("new", File.ReadAllText(path, Encoding.UTF8));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Single(Directory.GetFiles(temp.Path));
    }

    [Fact]
    public void MissingDirectoryIsAnIoError()
    {
        using var temp = new TempDirectory();
        Assert.ThrowsAny<IOException>(() => SecretFile.WriteAllText(temp.File("nope/secret.key"), "x", overwrite: false));
    }
}
