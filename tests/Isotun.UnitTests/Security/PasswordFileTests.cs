using Isotun.Security;

namespace Isotun.UnitTests.Security;

public class PasswordFileTests
{
    private static readonly string AliceHash = PasswordHasher.Hash("alice-pw", 1000);
    private static readonly string BobHash = PasswordHasher.Hash("bob-pw", 1000);

    [Fact]
    public void ParsesEntriesCommentsAndBlankLines()
    {
        using var temp = new TempDirectory();
        var path = temp.File("users");
        File.WriteAllText(path, $"# users of acme\n\nalice:{AliceHash}\n  # indented comment\nbob@example.com:{BobHash}\n");

        var file = PasswordFile.Load(path);

        Assert.Equal(["alice", "bob@example.com"], file.Users);
        Assert.True(file.TryGetHash("alice", out var hash));
        Assert.Equal(AliceHash, hash);
        Assert.True(PasswordHasher.Verify("alice-pw", hash));
        Assert.False(file.TryGetHash("carol", out _));
        Assert.False(file.TryGetHash("Alice", out _));
    }

    [Fact]
    public void TheUsualCostIsTheOneMostHashesHaveAndTheDefaultForAnEmptyFile()
    {
        using var temp = new TempDirectory();
        var path = temp.File("users");
        File.WriteAllText(path, $"alice:{AliceHash}\nbob:{BobHash}\ncarol:{PasswordHasher.Hash("c", 2000)}\n");
        Assert.Equal(1000, PasswordFile.Load(path).UsualIterations);
        File.WriteAllText(path, $"alice:{AliceHash}\ncarol:{PasswordHasher.Hash("c", 2000)}\n");
        Assert.Equal(2000, PasswordFile.Load(path).UsualIterations); // as common: the higher
        File.WriteAllText(path, "# nobody yet\n");
        Assert.Equal(PasswordHasher.DefaultIterations, PasswordFile.Load(path).UsualIterations);
    }

    [Fact]
    public void DuplicateUsersAreReportedWithLineNumbers()
    {
        using var temp = new TempDirectory();
        var path = temp.File("users");
        File.WriteAllText(path, $"alice:{AliceHash}\n# c\nalice:{BobHash}\n");
        var ex = Assert.Throws<InvalidDataException>(() => PasswordFile.Load(path));
        Assert.Contains("line 3", ex.Message);
        Assert.Contains("line 1", ex.Message);
    }

    [Fact]
    public void EveryMalformedLineIsReportedWithoutEchoingIt()
    {
        using var temp = new TempDirectory();
        var path = temp.File("users");
        File.WriteAllText(path, $"alice:{AliceHash}\nhunter2\nbad user:{BobHash}\ncarol:notahash\n");
        var ex = Assert.Throws<InvalidDataException>(() => PasswordFile.Load(path));
        Assert.Contains("line 2", ex.Message);
        Assert.Contains("line 3", ex.Message);
        Assert.Contains("line 4", ex.Message);
        Assert.DoesNotContain("hunter2", ex.Message);
        Assert.DoesNotContain("notahash", ex.Message);
    }

    [Theory]
    [InlineData("alice", true)]
    [InlineData("a.b_c-d@e", true)]
    [InlineData("A9", true)]
    [InlineData("", false)]
    [InlineData("has space", false)]
    [InlineData("colon:", false)]
    [InlineData("slash/", false)]
    [InlineData("ünicode", false)]
    public void UserNameRule(string name, bool valid)
    {
        Assert.Equal(valid, PasswordFile.IsValidUserName(name));
    }

    [Fact]
    public void UserNameLengthLimit()
    {
        Assert.True(PasswordFile.IsValidUserName(new string('a', 64)));
        Assert.False(PasswordFile.IsValidUserName(new string('a', 65)));
    }

    [Fact]
    public void SetUserCreatesFileWithMode0600()
    {
        using var temp = new TempDirectory();
        var path = temp.File("users");
        PasswordFile.SetUser(path, "alice", AliceHash);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal(["alice"], PasswordFile.Load(path).Users);
        Assert.Equal([path, path + ".lock"], Directory.GetFiles(temp.Path).Order()); // no temporary file left
    }

    [Fact]
    public void SetUserReplacesInPlaceAndKeepsComments()
    {
        using var temp = new TempDirectory();
        var path = temp.File("users");
        File.WriteAllText(path, $"# keep me\nalice:{AliceHash}\nbob:{BobHash}\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var newHash = PasswordHasher.Hash("new-pw", 1000);
        PasswordFile.SetUser(path, "alice", newHash);
        PasswordFile.SetUser(path, "carol", BobHash);

        Assert.Equal($"# keep me\nalice:{newHash}\nbob:{BobHash}\ncarol:{BobHash}\n", File.ReadAllText(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal([path, path + ".lock"], Directory.GetFiles(temp.Path).Order()); // no temporary file left
    }

    [Fact]
    public void SetUserRejectsBadInput()
    {
        using var temp = new TempDirectory();
        var path = temp.File("users");
        Assert.Throws<ArgumentException>(() => PasswordFile.SetUser(path, "bad user", AliceHash));
        Assert.Throws<ArgumentException>(() => PasswordFile.SetUser(path, "alice", "plaintext"));
        Assert.Throws<ArgumentException>(() => PasswordFile.SetUser(path, "alice", AliceHash + "\nmallory:" + BobHash));
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void SetUserLeavesMalformedFileUntouched()
    {
        using var temp = new TempDirectory();
        var path = temp.File("users");
        File.WriteAllText(path, "garbage\n");
        Assert.Throws<InvalidDataException>(() => PasswordFile.SetUser(path, "alice", AliceHash));
        Assert.Equal("garbage\n", File.ReadAllText(path));
    }

    [Fact]
    public void RemoveUser()
    {
        using var temp = new TempDirectory();
        var path = temp.File("users");
        PasswordFile.SetUser(path, "alice", AliceHash);
        PasswordFile.SetUser(path, "bob", BobHash);

        Assert.True(PasswordFile.RemoveUser(path, "alice"));
        Assert.False(PasswordFile.RemoveUser(path, "alice"));
        Assert.False(PasswordFile.RemoveUser(temp.File("missing"), "bob"));
        Assert.Equal(["bob"], PasswordFile.Load(path).Users);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    /// <summary>`isotun user add` and `user remove` run at once (a provisioning script in parallel, two operators) each
    /// keep their change: none is written over by another's copy of the file read before it.</summary>
    [Fact]
    public void ChangesMadeAtOnceAreAllKept()
    {
        using var temp = new TempDirectory();
        var path = temp.File("users");
        for (int i = 0; i < 16; i++) PasswordFile.SetUser(path, $"old{i}", AliceHash);
        Parallel.For(0, 48, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            if (i < 32) PasswordFile.SetUser(path, $"new{i}", BobHash);
            else Assert.True(PasswordFile.RemoveUser(path, $"old{i - 32}"));
        });
        Assert.Equal(Enumerable.Range(0, 32).Select(i => $"new{i}").Order(), PasswordFile.Load(path).Users.Order());
    }

    [Fact]
    public void LoadMissingFileThrowsFileNotFound()
    {
        using var temp = new TempDirectory();
        Assert.Throws<FileNotFoundException>(() => PasswordFile.Load(temp.File("missing")));
    }
}
