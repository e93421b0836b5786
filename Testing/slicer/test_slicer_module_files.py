"""Static checks of the Slicer extension: what cannot run here (Qt, CMake) is checked from the files.

- every Python file of a module (the two with a panel and the hidden QPerfCommon) is listed in
  its CMakeLists.txt, and every listed file exists;
- the extension's CMakeLists.txt carries the full EXTENSION_* metadata and bundles ``qperf``;
- each ``.ui`` file is valid Qt Designer XML, declares its custom widgets, has every widget the
  code uses (``self.ui.<name>``), and binds exactly the parameter node's fields;
- module files compile, parse as Python 3.9 (the oldest Python of supported Slicer releases),
  carry the module metadata, import neither ``qt`` in their libraries nor ``qperf`` at load time,
  and register a self-test that runs the library's self-test;
- both panel modules depend on the hidden QPerfCommon, and QPerfFlow not on QPerfSeg.
"""

from __future__ import annotations

import ast
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = ("QPerfSeg", "QPerfFlow")
#: The hidden module with the scene glue both panel modules share.
COMMON = "QPerfCommon"
ALL_MODULES = (COMMON, *MODULES)
OLDEST_SLICER_PYTHON = (3, 9)


def cmakeList(text: str, variable: str, moduleName: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert match, f"set({variable} ...) not found"
    return [item.replace("${MODULE_NAME}", moduleName) for item in match.group(1).split()]


def pythonFiles(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def moduleSource(module: str) -> str:
    return (REPO / module / f"{module}.py").read_text(encoding="utf-8")


def uiTree(module: str) -> ET.Element:
    return ET.parse(REPO / module / "Resources" / "UI" / f"{module}.ui").getroot()


def parameterFields(module: str) -> dict[str, ast.AnnAssign]:
    tree = ast.parse(moduleSource(module))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
            isinstance(d, ast.Name) and d.id == "parameterNodeWrapper" for d in node.decorator_list
        ):
            return {
                n.target.id: n for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
            }
    raise AssertionError(f"{module}.py has no @parameterNodeWrapper class")


@pytest.mark.parametrize("module", ALL_MODULES)
def test_cmake_lists_every_python_file_and_resource(module):
    folder = REPO / module
    text = (folder / "CMakeLists.txt").read_text()
    scripts = cmakeList(text, "MODULE_PYTHON_SCRIPTS", module)
    resources = cmakeList(text, "MODULE_PYTHON_RESOURCES", module)
    onDisk = {p.relative_to(folder).as_posix() for p in pythonFiles(folder)}
    assert set(scripts) == onDisk, "MODULE_PYTHON_SCRIPTS must list exactly the module's Python files"
    resourceFiles = {
        p.relative_to(folder).as_posix() for p in (folder / "Resources").rglob("*") if p.is_file() and p.suffix != ".py"
    }
    assert set(resources) == resourceFiles, "MODULE_PYTHON_RESOURCES must list exactly the module's resources"
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    if module == COMMON:  # no panel: no UI, no icon, no generic widget tests
        assert resources == [] and f"{module}Lib/selftest.py" in scripts
        assert re.search(r"slicerMacroBuildScriptedModule\(\s*NAME \$\{MODULE_NAME\}", text)
        return
    assert f"Resources/UI/{module}.ui" in resources and f"Resources/Icons/{module}.png" in resources
    assert re.search(r"slicerMacroBuildScriptedModule\(.*WITH_GENERIC_TESTS.*?\)", text, re.S)


def test_extension_cmake_has_full_metadata_and_bundles_the_core_library():
    text = (REPO / "CMakeLists.txt").read_text()
    values = dict(re.findall(r'set\((EXTENSION_[A-Z]+)\s+"(.*?)"\)', text, re.S))
    for key in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert values.get(f"EXTENSION_{key}", "").strip(), f"EXTENSION_{key} is missing or empty"
    assert values["EXTENSION_CATEGORY"] == "Cardiac"
    assert values["EXTENSION_ICONURL"].endswith("Resources/Icons/QPerf.png")
    assert all(url.startswith("https://") for url in values["EXTENSION_SCREENSHOTURLS"].split())
    assert "find_package(Slicer REQUIRED)" in text
    for module in ALL_MODULES:
        assert f"add_subdirectory({module})" in text
    positions = [text.index(f"add_subdirectory({module})") for module in ALL_MODULES]
    assert positions == sorted(positions), "QPerfCommon is added before the modules that depend on it"
    assert re.search(r"file\(GLOB_RECURSE QPERF_PYTHON_SCRIPTS.*qperf/\*\.py", text, re.S)
    assert re.search(r"slicerMacroBuildScriptedModule\(\s*NAME qperf\s+SCRIPTS \$\{QPERF_PYTHON_SCRIPTS\}", text)
    for resource in cmakeList(text, "QPERF_SHARED_RESOURCES", "qperf"):
        assert (REPO / resource).is_file(), f"{resource} is bundled but missing"


@pytest.mark.parametrize("module", MODULES)
def test_ui_file_is_valid_designer_xml_with_declared_custom_widgets(module):
    root = uiTree(module)
    assert root.tag == "ui" and root.get("version") == "4.0"
    assert root.findtext("class") == module
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == module
    used = {w.get("class") for w in root.iter("widget")}
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    assert {c for c in used if not c.startswith("Q")} <= declared
    assert {"ctkCollapsibleButton", "qMRMLNodeComboBox"} <= used
    names = [w.get("name") for w in root.iter("widget")]
    assert len(names) == len(set(names)), "widget names must be unique"
    for combo in (w for w in root.iter("widget") if w.get("class") == "qMRMLNodeComboBox"):
        receivers = {
            c.findtext("receiver")
            for c in root.iter("connection")
            if c.findtext("signal").startswith("mrmlSceneChanged")
        }
        assert combo.get("name") in receivers, f"{combo.get('name')} does not receive the scene"
        assert combo.find("property[@name='nodeTypes']/stringlist/string") is not None


@pytest.mark.parametrize("module", MODULES)
def test_every_widget_the_code_uses_exists_in_the_ui(module):
    widgetNames = {w.get("name") for w in uiTree(module).iter("widget")}
    used = set(re.findall(r"self\.ui\.(\w+)", moduleSource(module)))
    assert used, "the widget code uses no widget"
    assert used <= widgetNames, f"missing in the .ui: {sorted(used - widgetNames)}"


@pytest.mark.parametrize("module", MODULES)
def test_parameter_node_fields_match_the_ui_bindings(module):
    bindings = {}
    for widget in uiTree(module).iter("widget"):
        prop = widget.find("property[@name='SlicerParameterName']")
        if prop is not None:
            assert prop.get("stdset") == "0", "SlicerParameterName must be a dynamic property"
            bindings[prop.findtext("string")] = widget.get("class")
    fields = parameterFields(module)
    assert set(bindings) == set(fields), f"bindings {sorted(bindings)} != fields {sorted(fields)}"
    for name, widgetClass in bindings.items():
        annotation = ast.unparse(fields[name].annotation)
        if widgetClass == "qMRMLNodeComboBox":
            assert annotation.startswith("slicer.vtkMRML"), f"{name}: a node selector needs a node type"
        elif widgetClass == "ctkPathLineEdit":
            assert annotation == "pathlib.Path"
        elif widgetClass == "QComboBox":
            assert "Choice(" in annotation, f"{name}: a combo box needs Annotated[str, Choice([...])]"
        elif widgetClass == "ctkSliderWidget":
            assert annotation.startswith("Annotated[float, WithinRange(")
        elif widgetClass == "QCheckBox":
            assert annotation == "bool", f"{name}: a check box needs a bool"
        elif widgetClass == "QSpinBox":
            assert annotation.startswith("Annotated[int, WithinRange(") or annotation == "int"
        else:
            raise AssertionError(f"{name}: no binding rule for {widgetClass}")


def allModulePythonFiles() -> list[Path]:
    return [p for module in ALL_MODULES for p in pythonFiles(REPO / module)]


@pytest.mark.parametrize("path", allModulePythonFiles(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_module_files_compile_and_parse_as_python_39(path):
    source = path.read_text(encoding="utf-8")
    compile(source, str(path), "exec")
    tree = ast.parse(source, feature_version=OLDEST_SLICER_PYTHON)
    postponed = any(
        isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    for node in ast.walk(tree):
        assert not (hasattr(ast, "Match") and isinstance(node, ast.Match)), "match needs Python 3.10"
        annotations = []
        if isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
            annotations += [a.annotation for a in arguments if a.annotation] + ([node.returns] if node.returns else [])
        if not postponed:
            for annotation in annotations:
                unions = [n for n in ast.walk(annotation) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)]
                assert not unions, f"line {annotation.lineno}: X | Y annotations need Python 3.10 at run time"
    if path.parent.name.endswith("Lib"):
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & {"qt", "ctk", "slicer.ScriptedLoadableModule"}, "module libraries never import qt"


@pytest.mark.parametrize("module", MODULES)
def test_module_class_metadata_and_self_test(module):
    source = moduleSource(module)
    tree = ast.parse(source)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    assert {module, f"{module}Widget", f"{module}Logic", f"{module}Test", f"{module}ParameterNode"} <= set(classes)
    assigned = {
        t.attr: n.value
        for n in ast.walk(classes[module])
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Attribute)
    }
    for key in ("title", "categories", "dependencies", "contributors", "helpText", "acknowledgementText"):
        assert key in assigned, f"{module}: parent.{key} is not set"
    assert ast.literal_eval(assigned["categories"]) == ["Cardiac"]
    assert [b.id for b in classes[f"{module}Logic"].bases] == ["ScriptedLoadableModuleLogic"]
    assert [b.id for b in classes[f"{module}Test"].bases] == ["ScriptedLoadableModuleTest"]
    testSource = ast.get_source_segment(source, classes[f"{module}Test"])
    assert "runSelfTest(slicer.mrmlScene" in testSource and "skip" not in testSource.lower()
    assert f'loadUI(self.resourcePath("UI/{module}.ui"))' in source
    assert "childWidgetVariables" in source and "connectGui(self.ui)" in source
    topLevelImports = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in tree.body
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    assert "qperf" not in topLevelImports and f"{module}Lib" not in topLevelImports, (
        "the module must load before its Python dependencies are installed"
    )
    assert "pip_install" not in source, "dependencies are installed on first use, through the library"


def moduleAssignments(module: str) -> dict:
    """``self.parent.<key> = value`` assignments of a module class, as AST values."""
    tree = ast.parse(moduleSource(module))
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    return {
        t.attr: n.value
        for n in ast.walk(classes[module])
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Attribute)
    }


def test_hidden_common_module_has_metadata_logic_and_self_test():
    source = moduleSource(COMMON)
    tree = ast.parse(source)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    assert {COMMON, f"{COMMON}Logic", f"{COMMON}Test"} <= set(classes)
    assert f"{COMMON}Widget" not in classes, "the shared module has no panel"
    assigned = moduleAssignments(COMMON)
    for key in ("title", "categories", "dependencies", "contributors", "helpText", "acknowledgementText", "hidden"):
        assert key in assigned, f"{COMMON}: parent.{key} is not set"
    assert ast.literal_eval(assigned["hidden"]) is True
    assert ast.literal_eval(assigned["categories"]) == ["Cardiac"]
    assert [b.id for b in classes[f"{COMMON}Logic"].bases] == ["ScriptedLoadableModuleLogic"]
    assert [b.id for b in classes[f"{COMMON}Test"].bases] == ["ScriptedLoadableModuleTest"]
    testSource = ast.get_source_segment(source, classes[f"{COMMON}Test"])
    assert "runSelfTest(slicer.mrmlScene" in testSource and "skip" not in testSource.lower()
    topLevelImports = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in tree.body
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    assert not topLevelImports & {"qperf", f"{COMMON}Lib", "qt"}, "the module loads before its dependencies"


def test_panel_modules_depend_on_the_common_module_and_flow_not_on_seg():
    for module in MODULES:
        dependencies = ast.literal_eval(moduleAssignments(module)["dependencies"])
        assert COMMON in dependencies, f"{module} does not declare {COMMON}"
    assert "QPerfSeg" not in ast.literal_eval(moduleAssignments("QPerfFlow")["dependencies"])
    assert "QPerfSeg" not in moduleSource("QPerfFlow").replace("QPerf Seg", ""), "QPerfFlow.py names QPerfSeg"


@pytest.mark.parametrize(
    "icon",
    ["Resources/Icons/QPerf.png", "QPerfSeg/Resources/Icons/QPerfSeg.png", "QPerfFlow/Resources/Icons/QPerfFlow.png"],
)
def test_icons_are_128_pixel_pngs(icon):
    header = (REPO / icon).read_bytes()[:32]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    assert struct.unpack(">II", header[16:24]) == (128, 128)


def test_every_screenshot_the_extension_lists_is_a_png_in_the_repository():
    text = (REPO / "CMakeLists.txt").read_text()
    urls = re.search(r'set\(EXTENSION_SCREENSHOTURLS\s+"(.*?)"\)', text, re.S).group(1).split()
    assert len(urls) >= 2
    for url in urls:
        relative = url.split("/main/", 1)[1]
        header = (REPO / relative).read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{relative} is not a PNG"
        width, height = struct.unpack(">II", header[16:24])
        assert width >= 800 and height >= 400, f"{relative} is {width} x {height}"
