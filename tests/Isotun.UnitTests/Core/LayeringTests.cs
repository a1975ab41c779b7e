using System.Reflection;
using Isotun.Tun;

namespace Isotun.UnitTests.Core;

/// <summary>Dependencies point inward (docs/architecture.md): Tun and Transport reach the kernel only through interfaces.</summary>
public sealed class LayeringTests
{
    private const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    [Theory]
    [InlineData("Isotun.Tun")]
    [InlineData("Isotun.Transport")]
    public void A_layer_below_the_roles_names_no_linux_type_in_its_signatures(string layer)
    {
        var offenders = typeof(ITunQueue).Assembly.GetTypes()
            .Where(t => t.Namespace == layer)
            .SelectMany(t => SignatureTypes(t).Where(Linux).Select(used => $"{t.Name} uses {used.FullName}"))
            .Distinct()
            .ToList();
        Assert.Empty(offenders);
    }

    private static bool Linux(Type t) =>
        t.Namespace == "Isotun.Linux" || (t.IsGenericType && t.GetGenericArguments().Any(Linux)) || (t.HasElementType && Linux(t.GetElementType()!));

    private static IEnumerable<Type> SignatureTypes(Type t)
    {
        if (t.BaseType is { } b) yield return b;
        foreach (var i in t.GetInterfaces()) yield return i;
        foreach (var f in t.GetFields(All)) yield return f.FieldType;
        foreach (var p in t.GetProperties(All)) yield return p.PropertyType;
        foreach (var m in t.GetMethods(All))
        {
            yield return m.ReturnType;
            foreach (var p in m.GetParameters()) yield return p.ParameterType;
        }
        foreach (var c in t.GetConstructors(All))
            foreach (var p in c.GetParameters()) yield return p.ParameterType;
    }
}
