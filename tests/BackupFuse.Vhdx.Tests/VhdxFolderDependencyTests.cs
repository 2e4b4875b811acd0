using System.Reflection;
using System.Reflection.Emit;

namespace BackupFuse.Vhdx.Tests;

/// <summary>
/// The folders of BackupFuse.Vhdx depend one way: Differencing -> root (SynthesizedVhdx, VhdxReader,
/// ISynthesizedPatchStore) -> Format, and Differencing -> Log -> Format. Checked on the compiled assembly: every type a
/// namespace's types name in their signatures, fields, locals and method bodies (IL tokens).
/// </summary>
public sealed class VhdxFolderDependencyTests
{
    private const string Root = "BackupFuse.Vhdx";
    private const string Differencing = "BackupFuse.Vhdx.Differencing";
    private const string Log = "BackupFuse.Vhdx.Log";

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    private static readonly Assembly Vhdx = typeof(SynthesizedVhdx).Assembly;

    [Fact]
    public void RootNeverNamesADifferencingOrLogType()
    {
        var offending = References(Root).Where(r => r.Target.Namespace is Differencing or Log).ToList();
        Assert.True(offending.Count == 0, string.Join("\n", offending.Select(r => $"{r.Source} -> {r.Target}")));
    }

    [Fact]
    public void LogNamesNeitherTheRootNorDifferencing()
    {
        Assert.Contains(Vhdx.GetTypes(), t => t.Namespace == Log && t.Name == "VhdxLog");
        var offending = References(Log).Where(r => r.Target.Namespace is Root or Differencing).ToList();
        Assert.True(offending.Count == 0, string.Join("\n", offending.Select(r => $"{r.Source} -> {r.Target}")));
    }

    [Fact]
    public void PatchStoreJournalAndBatNeverNameTheFile()
    {
        // The write path goes one way: DifferencingVhdxFile -> BlockAllocationTable / DifferencingPatchStore ->
        // MetadataJournal -> VhdxLog; none of the parts calls back up into the file.
        string[] parts = ["DifferencingPatchStore", "MetadataJournal", "BlockAllocationTable", "MetadataSectorCache"];
        var offending = References(Differencing)
            .Where(r => parts.Contains(Outermost(r.Source).Name) && r.Target.FullName == Differencing + ".DifferencingVhdxFile")
            .ToList();
        Assert.True(offending.Count == 0, string.Join("\n", offending.Select(r => $"{r.Source} -> {r.Target}")));
    }

    [Fact]
    public void TheCheckSeesMethodBodies()
    {
        // The patch store (Differencing) calls into the journal only inside method bodies: the scan must see that.
        Assert.Contains(References(Differencing), r => r.Source.Name == "DifferencingPatchStore" && r.Target.Name == "MetadataJournal");
        Assert.Contains(References(Differencing), r => r.Source.Name == "DifferencingVhdxFile" && r.Target.Name == "VhdxLog");
        Assert.Contains(References(Differencing), r => r.Source.Name == "DifferencingVhdxOverlay" && r.Target.FullName == Differencing + ".DifferencingVhdxFile");
    }

    private static Type Outermost(Type t) => t.DeclaringType is { } d ? Outermost(d) : t;

    private static List<(Type Source, Type Target)> References(string ns)
    {
        var result = new List<(Type, Type)>();
        foreach (var type in Vhdx.GetTypes().Where(t => t.Namespace == ns))
        {
            var seen = new HashSet<Type>();
            void Add(Type? t)
            {
                if (t is null || !seen.Add(t))
                {
                    return;
                }

                if (t.HasElementType)
                {
                    Add(t.GetElementType());
                }

                if (t.IsGenericType)
                {
                    foreach (var a in t.GetGenericArguments())
                    {
                        Add(a);
                    }
                }

                if (t.Assembly == Vhdx && !t.IsGenericParameter)
                {
                    result.Add((type, t));
                }
            }

            Add(type.BaseType);
            foreach (var i in type.GetInterfaces())
            {
                Add(i);
            }

            const BindingFlags all = BindingFlags.DeclaredOnly | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;
            foreach (var f in type.GetFields(all))
            {
                Add(f.FieldType);
            }

            foreach (var p in type.GetProperties(all))
            {
                Add(p.PropertyType);
            }

            foreach (var m in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
            {
                if (m is MethodInfo mi)
                {
                    Add(mi.ReturnType);
                }

                foreach (var p in m.GetParameters())
                {
                    Add(p.ParameterType);
                }

                var body = m.GetMethodBody();
                if (body is null)
                {
                    continue;
                }

                foreach (var local in body.LocalVariables)
                {
                    Add(local.LocalType);
                }

                foreach (var member in Tokens(m, body.GetILAsByteArray()!))
                {
                    Add(member as Type ?? member.DeclaringType);
                    if (member is MethodInfo called)
                    {
                        Add(called.ReturnType);
                    }
                    else if (member is FieldInfo field)
                    {
                        Add(field.FieldType);
                    }
                }
            }
        }

        return result;
    }

    /// <summary>The members and types named by the token operands of <paramref name="il"/>.</summary>
    private static IEnumerable<MemberInfo> Tokens(MethodBase method, byte[] il)
    {
        var typeArgs = method.DeclaringType is { IsGenericType: true } d ? d.GetGenericArguments() : null;
        var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        int pos = 0;
        while (pos < il.Length)
        {
            short value = il[pos++];
            if (value == 0xFE)
            {
                value = unchecked((short)(0xFE00 | il[pos++]));
            }

            var op = OpCodesByValue[value];
            int size = op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + (4 * BitConverter.ToInt32(il, pos)),
                _ => 4,
            };
            if (op.OperandType is OperandType.InlineField or OperandType.InlineMethod or OperandType.InlineTok or OperandType.InlineType)
            {
                int token = BitConverter.ToInt32(il, pos);
                MemberInfo? member = null;
                try
                {
                    member = method.Module.ResolveMember(token, typeArgs, methodArgs);
                }
                catch (ArgumentException)
                {
                }

                if (member is not null)
                {
                    yield return member;
                }
            }

            pos += size;
        }
    }
}
