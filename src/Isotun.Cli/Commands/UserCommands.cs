using System.CommandLine;
using System.Text;
using Isotun.Security;

namespace Isotun.Cli.Commands;

/// <summary>
/// <c>isotun user</c>: manage a tenant's password file. Passwords come from a file or stdin (never argv) and are stored as
/// slow PBKDF2 hashes.
/// </summary>
public static class UserCommands
{
    private const int Ok = 0;
    private const int Failure = 1;
    private const int UsageError = 2;
    private const int MaxPasswordLength = 1024;

    public static Command Create()
    {
        var command = new Command("user", "Manage users in a tenant's password file");
        command.Subcommands.Add(CreateAdd());
        command.Subcommands.Add(CreateRemove());
        command.Subcommands.Add(CreateList());
        return command;
    }

    private static Option<string> FileOption() =>
        new("--file") { Description = "Password file (user:hash lines)", Required = true };

    private static Option<string> UserOption() =>
        new("--user") { Description = "User name", Required = true };

    private static Command CreateAdd()
    {
        var file = FileOption();
        var user = UserOption();
        var passwordFile = new Option<string>("--password-file")
        {
            Description = "Read the password from the first line of this file instead of stdin",
        };
        var command = new Command("add", "Add a user or replace a user's password (password from --password-file or stdin)");
        command.Options.Add(file);
        command.Options.Add(user);
        command.Options.Add(passwordFile);
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var path = parseResult.GetValue(file)!;
            var name = parseResult.GetValue(user)!;
            if (!PasswordFile.IsValidUserName(name))
            {
                error.WriteLine("isotun user add: user names are 1-64 characters of A-Z a-z 0-9 . _ @ -");
                return UsageError;
            }

            string? password;
            try
            {
                password = ReadPassword(parseResult.GetValue(passwordFile), error, out var problem);
                if (password is null)
                {
                    error.WriteLine($"isotun user add: {problem}");
                    return UsageError;
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"isotun user add: cannot read the password: {ex.Message}");
                return Failure;
            }

            try
            {
                PasswordFile.SetUser(path, name, PasswordHasher.Hash(password));
            }
            catch (InvalidDataException ex)
            {
                error.WriteLine($"isotun user add: {ex.Message}");
                return UsageError;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"isotun user add: {ex.Message}");
                return Failure;
            }

            output.WriteLine($"set password of '{name}' in {path} (a running server takes it within 2 s)");
            return Ok;
        });
        return command;
    }

    private static Command CreateRemove()
    {
        var file = FileOption();
        var user = UserOption();
        var command = new Command("remove", "Remove a user");
        command.Options.Add(file);
        command.Options.Add(user);
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var path = parseResult.GetValue(file)!;
            var name = parseResult.GetValue(user)!;
            try
            {
                if (!PasswordFile.RemoveUser(path, name))
                {
                    error.WriteLine($"isotun user remove: no user '{name}' in {path}");
                    return Failure;
                }
            }
            catch (InvalidDataException ex)
            {
                error.WriteLine($"isotun user remove: {ex.Message}");
                return UsageError;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"isotun user remove: {ex.Message}");
                return Failure;
            }

            output.WriteLine($"removed '{name}' from {path} (a running server ends the user's sessions within 2 s)");
            return Ok;
        });
        return command;
    }

    private static Command CreateList()
    {
        var file = FileOption();
        var command = new Command("list", "List the users of a password file");
        command.Options.Add(file);
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var path = parseResult.GetValue(file)!;
            try
            {
                foreach (var name in PasswordFile.Load(path).Users)
                {
                    output.WriteLine(name);
                }
            }
            catch (InvalidDataException ex)
            {
                error.WriteLine($"isotun user list: {ex.Message}");
                return UsageError;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"isotun user list: {ex.Message}");
                return Failure;
            }

            return Ok;
        });
        return command;
    }

    /// <summary>The password, or null with <paramref name="problem"/> set. Never echoes what was typed.</summary>
    private static string? ReadPassword(string? passwordFile, TextWriter prompt, out string problem)
    {
        problem = string.Empty;
        string? password;
        if (passwordFile is not null)
        {
            using var reader = new StreamReader(passwordFile, Encoding.UTF8);
            password = reader.ReadLine();
        }
        else if (!Console.IsInputRedirected)
        {
            password = ReadHidden(prompt, "Password: ");
            var again = ReadHidden(prompt, "Repeat password: ");
            if (!string.Equals(password, again, StringComparison.Ordinal))
            {
                problem = "the passwords do not match";
                return null;
            }
        }
        else
        {
            password = Console.In.ReadLine();
        }

        password = password?.TrimEnd('\r', '\n');
        if (string.IsNullOrEmpty(password))
        {
            problem = "refusing an empty password";
            return null;
        }

        if (password.Length > MaxPasswordLength)
        {
            problem = $"password longer than {MaxPasswordLength} characters";
            return null;
        }

        return password;
    }

    private static string ReadHidden(TextWriter prompt, string label)
    {
        prompt.Write(label);
        prompt.Flush();
        var builder = new StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter)
            {
                break;
            }

            if (key.Key == ConsoleKey.Backspace)
            {
                if (builder.Length > 0)
                {
                    builder.Length--;
                }

                continue;
            }

            if (!char.IsControl(key.KeyChar) && builder.Length <= MaxPasswordLength)
            {
                builder.Append(key.KeyChar);
            }
        }

        prompt.WriteLine();
        return builder.ToString();
    }
}
