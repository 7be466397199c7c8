"""The demo grammar's phrase tables (docs/formats.md#demo-cohort): every sentence the demo cohort can say, in our own words.

Templates use two kinds of brackets: ``[a|b|]`` picks one alternative (an empty one drops the part; alternatives
nest) and ``{slot}`` is a value drawn per sentence (lobe, size, degree ..., see ``grammar.draw_slots``). One template
thus stands for hundreds of sentences, which is what keeps the share of verbatim-recurring sentences CT-RATE-like:
a radiologist's *stock* wording of a normal statement recurs across their reports, a freely composed one rarely.

Rules the tables keep (the checks and tests verify them on every generated sentence):
- a POSITIVE sentence names its finding so that ``FINDING_PATTERNS`` matches it, and names no other finding;
- NORMAL and NEGATIVE sentences assert nothing: every abnormal word is negated ("no ...", "... was not seen");
- no "not enlarged" for the heart, no bare "lymph nodes" without a negation, no "band" beside "linear"
  outside fibrotic sequelae: the rule labeler (``adaragct.eval.labelers.rules``) reads those as findings.
"""

from __future__ import annotations

# fmt: off
NOT_SEEN = "[was not seen|is not seen|was not detected|is not present|was not identified]"
WHERE_LUNG = "[in the {lobe}|in the {lobe}|in {lobes_pl}]"

# Abnormal phrasings per finding: used when its label is 1, each naming its finding (FINDING_PATTERNS).
POSITIVE: dict[str, tuple[str, ...]] = {
    "Medical material": (
        "A central venous catheter {seen} with its tip [in the superior vena cava|at the cavoatrial junction].",
        "[Median sternotomy wires|Sternotomy wires|Wires of a previous sternotomy] are [seen|noted|present][| in the sternum].",
        "A [dual-chamber |]pacemaker {seen} with [its leads|leads] in the right [atrium and ventricle|ventricle].",
        "A [port catheter|venous port catheter] {seen} [in the right chest wall|in the left chest wall], its tip in the [superior vena cava|right atrium].",
        "A nasogastric tube {seen} [along the esophagus|in the esophageal lumen], [its tip in the stomach|reaching the stomach].",
    ),
    "Arterial wall calcification": (
        "[Calcified atheroma plaques|Atherosclerotic calcifications|Calcific plaques|Mural calcifications] {seen_pl} in the [wall of the |]{aortic_part}.",
        "The {aortic_part} shows [{deg}|scattered|{deg} mural] atherosclerotic calcification.",
        "[{Deg}|Scattered|Patchy] calcified plaques {seen_pl} along the {aortic_part}.",
    ),
    "Cardiomegaly": (
        "The heart is enlarged, [consistent with|in keeping with] {deg} cardiomegaly.",
        "{Deg} cardiomegaly {seen}[| with an increased cardiothoracic ratio].",
        "[Cardiac size|The cardiac silhouette] is increased, in favour of {deg} cardiomegaly.",
    ),
    "Pericardial effusion": (
        "[A|A {deg}] pericardial effusion {seen}, [up to|measuring] {mm} mm [in depth|in thickness].",
        "[{Deg}|Some] pericardial fluid {seen} [around the heart|along the cardiac apex|anterior to the right ventricle].",
        "A pericardial effusion reaching {mm} mm {seen} [anteriorly|at the apex|along the right heart border].",
    ),
    "Coronary artery wall calcification": (
        "[Calcified plaques|Atherosclerotic calcifications|Calcifications] {seen_pl} in the [coronary arteries|left anterior descending coronary artery|coronary arteries, mainly the left main].",
        "{Deg} coronary artery calcification {seen}[| in more than one coronary territory].",
        "The coronary arteries show [{deg}|scattered|dense] atherosclerotic calcification.",
    ),
    "Hiatal hernia": (
        "A [{deg}|small|sliding] hiatal hernia {seen}[| at the gastroesophageal junction].",
        "Part of the stomach [lies|extends] above the diaphragm, [consistent with|in keeping with] a [small |sliding |]hiatal hernia.",
        "There is a [{deg}|small] sliding hiatal hernia[| with a widened hiatus].",
    ),
    "Lymphadenopathy": (
        "Enlarged lymph nodes [up to|measuring up to] {node_mm} mm in short axis {seen_pl} in the {station} [station|region].",
        "[An enlarged|A pathologically enlarged] {station} lymph node [measuring|of] {node_mm} mm {seen}[|, above the size limit].",
        "[Mediastinal|Hilar and mediastinal|Mediastinal and hilar] lymphadenopathy {seen}, the largest [node|lymph node] {node_mm} mm in the {station} [station|region].",
    ),
    "Emphysema": (
        "[Centrilobular|Paraseptal|Panlobular|Centrilobular and paraseptal] emphysema {seen} in {lobes_pl}.",
        "{Deg} emphysematous changes {seen_pl}[ in both lungs|, predominantly in the upper lobes| in {lobes_pl}].",
        "[{Deg} emphysema|Emphysema of {deg} extent] {seen}, [most marked|most pronounced] in {lobes_pl}.",
    ),
    "Atelectasis": (
        "[Subsegmental|Linear|Plate-like|Dependent] atelectasis {seen} in the {lobe}.",
        "[{Deg}|Focal|Patchy] atelectatic changes {seen_pl} in the {lobe}.",
        "In the {lobe}, [{deg}|subsegmental|plate-like] atelectasis {seen}.",
    ),
    "Lung nodule": (
        "A [{mm} mm|{mm}-mm] [solid|nonspecific|well-defined|subpleural|part-solid|smooth] nodule {seen} in the {lobe}[|, likely benign|, unchanged in appearance|; follow-up is advised].",
        "[Several|A few|Two|Multiple] [nonspecific|small|solid] nodules {seen_pl} in {lobes_pl}, the largest [measuring|of] {mm} mm.",
        "In the {lobe}, a [solid|nonspecific|smooth] nodule [measuring|of] {mm} mm {seen}.",
        "[Tiny|Millimetric|Small] [nonspecific|solid] nodules {seen_pl} in {lobes_pl}[|, too small to characterise].",
    ),
    "Lung opacity": (
        "[Patchy|Focal|Faint|Scattered] ground-glass [opacities|areas] {seen_pl} " + WHERE_LUNG + ".",
        "[{Deg}|Hazy] ground-glass opacity {seen} " + WHERE_LUNG + ".",
        "In the {lobe}, [{deg}|patchy|faint] ground-glass opacities {seen_pl}.",
    ),
    "Pulmonary fibrotic sequela": (
        "[Linear|Reticular|Streaky] fibrotic [changes|strands|scars] {seen_pl} in the {lobe}[|, in keeping with sequelae].",
        "[Post-inflammatory|Old] fibrotic sequelae {seen_pl} in [the {lobe}|both lung apices|{lobes_pl}].",
        "[{Deg}|Focal] fibrotic sequela {seen} [in the {lobe}|in the periphery of the {lobe}].",
    ),
    "Pleural effusion": (
        "A {side} pleural effusion [up to|measuring] {mm} mm [in depth|thick] {seen}.",
        "[A {deg}|A small|A moderate] {side} pleural effusion {seen}[| with adjacent compressive change].",
        "On the {side_lr} side, a pleural effusion [of|reaching] {mm} mm {seen}.",
    ),
    "Mosaic attenuation pattern": (
        "A mosaic attenuation pattern {seen} in [both lungs|{lobes_pl}][|, suggesting small airway disease|, in keeping with air trapping].",
        "[Areas|Patchy areas|Regions] of mosaic attenuation {seen_pl} in {lobes_pl}.",
        "[{Deg}|Patchy|Diffuse] mosaic attenuation {seen} in [both lungs|{lobes_pl}].",
    ),
    "Peribronchial thickening": (
        "Peribronchial [wall |]thickening {seen} in {lobes_pl}.",
        "[{Deg}|Diffuse|Patchy] peribronchial [wall |]thickening {seen}[| in both lungs|, mainly in the lower lobes].",
        "[The bronchi of|Bronchi in] {lobes_pl} show [{deg}|diffuse] peribronchial thickening.",
    ),
    "Consolidation": (
        "[A patchy|A dense|A segmental|A lobar|An ill-defined] consolidation[| with air bronchograms] {seen} in the {lobe}.",
        "[Patchy|Focal|Dense] consolidation {seen} in the {lobe}[|, suggestive of pneumonia|; infection?].",
        "In the {lobe}, [{deg}|patchy|segmental] consolidation[| with air bronchograms] {seen}.",
    ),
    "Bronchiectasis": (
        "[Cylindrical|Varicose|Traction|Mild cylindrical] bronchiectasis {seen} in {lobes_pl}.",
        "[{Deg}|Scattered] bronchiectatic changes {seen_pl} in [the {lobe}|{lobes_pl}].",
        "In {lobes_pl}, [{deg}|cylindrical] bronchiectasis {seen}.",
    ),
    "Interlobular septal thickening": (
        "[Smooth interlobular|Interlobular|{Deg} interlobular] septal thickening {seen} in {lobes_pl}.",
        "[{Deg}|Patchy|Smooth] septal thickening {seen} in [the {lobe}|{lobes_pl}|both lungs].",
        "In {lobes_pl}, [smooth|{deg}] interlobular septal thickening {seen}.",
    ),
}

# Denials, used when the label is 0 (pre-negations and CT-RATE-style post-negations).
NEGATIVE: dict[str, tuple[str, ...]] = {
    "Pericardial effusion": (
        "No pericardial [effusion|effusion or thickening|fluid] {seen}.",
        "[Pericardial effusion|Pericardial effusion or thickening|Fluid in the pericardium] " + NOT_SEEN + ".",
    ),
    "Coronary artery wall calcification": (
        "No [calcification|calcified plaque] {seen} in the coronary arteries.",
        "Coronary artery calcification " + NOT_SEEN + ".",
    ),
    "Lymphadenopathy": (
        "No [enlarged|pathologically enlarged] lymph nodes {seen_pl} in the [mediastinum|mediastinum or hila|prevascular, paratracheal or subcarinal stations|mediastinal and hilar stations][| or axillae].",
        "There is no [mediastinal|mediastinal or hilar|hilar or mediastinal] lymphadenopathy[| on either side].",
        "No [mediastinal|mediastinal or hilar|hilar or mediastinal] lymphadenopathy {seen}.",
        "Lymph nodes of pathological size [were not seen|were not detected|are not present] in the [mediastinum|mediastinum or hila|hilar regions].",
    ),
    "Hiatal hernia": (
        "No hiatal hernia {seen}.",
    ),
    "Emphysema": (
        "No emphysema {seen}[| in either lung].",
        "Emphysematous change " + NOT_SEEN + ".",
    ),
    "Atelectasis": ("No atelectasis {seen}.", "Atelectasis " + NOT_SEEN + "."),
    "Pulmonary fibrotic sequela": ("No fibrotic sequelae {seen_pl}.", "Fibrotic sequelae [were not seen|are not present]."),
    "Mosaic attenuation pattern": ("No mosaic attenuation {seen}.", "A mosaic attenuation pattern " + NOT_SEEN + "."),
    "Peribronchial thickening": ("No peribronchial thickening {seen}.", "Peribronchial thickening " + NOT_SEEN + "."),
    "Interlobular septal thickening": ("No interlobular septal thickening {seen}.", "Interlobular septal thickening " + NOT_SEEN + "."),
    "Lung nodule": ("No nodule {seen} in either lung.", "A pulmonary nodule " + NOT_SEEN + "."),
    "Consolidation": ("No consolidation {seen}[| in either lung].", "Consolidation " + NOT_SEEN + "."),
    "Lung opacity": ("No ground-glass opacity {seen}.", "Ground-glass opacity " + NOT_SEEN + "."),
    "Pleural effusion": (
        "No pleural effusion[| or pneumothorax| or thickening] {seen}[| on either side].",
        "Pleural effusion " + NOT_SEEN + "[| on either side].",
        "[There is no|No] fluid in the pleural [spaces|cavities][| on either side].",
    ),
    "Bronchiectasis": ("No bronchiectasis {seen}.", "Bronchiectasis " + NOT_SEEN + "."),
}

# Statements of normal anatomy: written in a radiologist's stock wording or freely composed (see grammar.py).
NORMAL: dict[str, tuple[str, ...]] = {
    "airway": (
        "[The trachea and both main bronchi|The trachea and the main bronchi|The trachea and main stem bronchi|The central airways] [are patent|are open|appear patent|have patent lumens|are of normal calibre][| and lie in the midline| and are midline| and show a normal course][| with no endoluminal lesion| without an obstructing lesion|, with no filling defect in the lumen|, and no obstruction is seen in the lumen].",
        "[The trachea is midline|The tracheal lumen is clear] and [both main bronchi|the main and lobar bronchi|the lobar bronchi] are patent[| with no endobronchial lesion|, with smooth walls].",
    ),
    "noncontrast": (
        "[As the study was acquired without intravenous contrast|On this non-contrast scan|Since no contrast agent was given|Without intravenous contrast], [mediastinal structures|the mediastinal organs|the hilar regions|the mediastinal structures] [could only be assessed in a limited way|cannot be evaluated in full detail|are assessed with limited sensitivity|are evaluated within the limits of the technique].",
    ),
    "vessels": (
        "[The mediastinal great vessels|Major mediastinal vessels|The main vascular structures of the mediastinum|The great vessels of the mediastinum] [are of normal calibre|show a normal calibre|have a normal course and calibre|are within normal limits][| for age| on this scan][|, and the pulmonary trunk is of normal width|, with a normal pulmonary trunk].",
        "[The pulmonary trunk and main pulmonary arteries|The main pulmonary artery and its branches] [are of normal calibre|have a normal diameter][| on this scan| for age].",
    ),
    "heart": (
        "[The heart|Cardiac size|The cardiac silhouette|Heart size|The size of the heart] [is normal|is within normal limits|appears normal|is unremarkable][| and its contour is smooth| with a normal contour| for the patient's age][| on this examination].",
        "The cardiothoracic ratio is [normal|within normal limits][| on this scan| for the patient's age][| and the cardiac contour is smooth].",
        "Heart size and contour are [normal|within normal limits|preserved][| on this scan| for age], [with normal cardiac chambers|and the cardiac chambers appear normal|with no abnormal cardiac finding].",
    ),
    "aorta": (
        "[The thoracic aorta|The aorta|The aorta in the thorax|The thoracic aorta] [has a normal diameter|is of normal calibre|shows a normal diameter|is normal in diameter][| along its course| throughout the thorax][| and follows a normal course|, with no aneurysmal dilatation].",
    ),
    "thyroid": (
        "The [visualised |imaged |]thyroid gland [appears normal|is unremarkable|is normal in size and density|has a homogeneous parenchyma][| in the sections through the neck| on the upper sections].",
        "Both thyroid lobes [appear normal|are unremarkable|are of normal size and density][| in the sections| on the upper sections][| with a homogeneous texture].",
    ),
    "esophagus": (
        "The [thoracic |]esophagus [has a normal calibre|is of normal calibre|is normal in calibre][ and shows no wall thickening| with no wall thickening| and no wall thickening is seen|, and no mass is seen along its course].",
        "No [wall thickening|dilatation or wall thickening|focal wall thickening] is seen in the [thoracic |]esophagus[|, which has a normal calibre| along its course].",
    ),
    "hila": (
        "[Both hila|The hilar structures|The hilar regions on both sides] [are of normal size|appear normal|are symmetric and of normal size][| on this scan| for age].",
    ),
    "chest_wall": (
        "[The chest wall|The soft tissues of the chest wall|The axillae and the chest wall|The breast tissue and chest wall] [are unremarkable|appear normal|show no mass][| on both sides| in the sections].",
    ),
    "lung_window": (
        "[On the lung window|In the lung window|On lung window images|Evaluated in the parenchymal window|On the parenchymal window]",
    ),
    "lungs": (
        "[Both lungs are|The lungs are] [well aerated|normally aerated|clear|symmetrically aerated][ and no nodule or infiltrate is seen| with no focal lesion in either lung| and no mass or consolidation is seen| and show a normal parenchymal density].",
        "[No mass, nodule or infiltrate|No focal lesion or infiltrate|No parenchymal lesion|No active infiltrate or mass] is [seen|identified|detected] in [either lung|both lungs|the lung parenchyma][| on this examination].",
        "[Aeration of both lungs|Lung aeration|Aeration of the lung parenchyma] is [normal|preserved|symmetric][ and no infiltrate is seen| with no focal lesion| and the lung volumes are normal].",
    ),
    "lungs_mass": (
        "No [mass|mass lesion|space-occupying lesion] is [seen|identified|detected] in [either lung|the lung parenchyma|both lungs][| on this examination].",
    ),
    "liver": (
        "[The liver|Liver parenchyma|The visualised liver][| in the sections|, as far as visualised,| on the lower sections] [is of normal size and density|shows no focal lesion|is unremarkable|appears normal|has a homogeneous density][| within the imaged portion].",
    ),
    "spleen": (
        "The spleen [is of normal size|appears normal|is unremarkable|is of normal size and density][| in the imaged portion| in the sections| on the lower sections].",
    ),
    "adrenals": (
        "[Both adrenal glands|The adrenal glands|The adrenals|The adrenal glands on both sides] [are normal|appear normal in thickness|show no mass|are unremarkable|have a normal shape][| in the sections| on this scan].",
    ),
    "kidneys": (
        "[The visualised portions of the kidneys|Both kidneys|The upper poles of both kidneys|The imaged parts of the kidneys] [are unremarkable|show no stones|appear normal|show no focal lesion][| in the sections| on the lower sections].",
    ),
    "pancreas": (
        "The [gallbladder|pancreas] [appears normal|is unremarkable|shows no abnormality][| within the sections| in the scanned field| as far as it is included].",
        "The gallbladder and pancreas [appear normal|are unremarkable][| within the sections| in the scanned field| as far as they are included].",
    ),
    "abdomen": (
        "[Upper abdominal organs|The upper abdominal organs|Abdominal organs] [included in the scan|within the field of view|seen on the lower sections|in the sections] [are unremarkable|appear normal|show no abnormality][| as far as visualised| on this non-dedicated scan].",
    ),
    "bones": (
        "[Bony structures|The osseous structures|The bones|The bones of the thorax][| in the scan field| within the imaged area| included in the study] [appear normal|are unremarkable|show no lytic or sclerotic lesion|are intact][| for age|, with no fracture].",
    ),
    "vertebrae": (
        "Vertebral body heights are [preserved|maintained|normal][| throughout the thoracic spine| at all levels][|, and no lytic lesion is seen].",
        "The thoracic vertebrae [show preserved heights|have normal heights and alignment|are normally aligned][| with no compression deformity].",
    ),
    "impression_normal": (
        "[No acute|No significant] [thoracic |]pathology [is seen|was detected][| on this examination].",
        "[Chest|Thoracic] CT [within normal limits|without significant abnormality][| for age].",
    ),
}

# Habitual lead-ins and tails that a radiologist adds to a normal statement (each statement may take one of each).
LEADS: tuple[str, ...] = (
    "On this [examination|study|scan]", "As far as [can be assessed|is visible|can be seen]", "[Within|Given] the limits of [the study|this technique]",
    "In the [sections obtained|acquired sections]", "On the [current|present] images", "As far as visualised", "On [the axial|axial] images",
    "Of note", "In this [study|examination]", "On the available [sections|images]", "At the time of this study", "Otherwise",
)
TAILS: tuple[str, ...] = (
    " on [the axial|axial|the reformatted] images", " as far as [can be assessed|is visible]", " [within|given] the limits of [the study|this technique]",
    " on the [current|present] images", " in the [sections obtained|acquired sections]", " on this [examination|study]",
    " in the [examined|imaged|scanned] [area|region|volume]", " on the available [sections|images]", " at the time of this study",
    " [with no|without any] other [finding|abnormality] of note", " [compared with|relative to] the expected appearance",
)

# Names of absent lung findings in a denial list ("No nodule, consolidation or bronchiectasis is seen.").
DENIAL_NAMES: dict[str, str] = {
    "Emphysema": "emphysema",
    "Lung nodule": "nodule",
    "Lung opacity": "ground-glass opacity",
    "Consolidation": "consolidation",
    "Atelectasis": "atelectasis",
    "Pulmonary fibrotic sequela": "fibrotic sequela",
    "Mosaic attenuation pattern": "mosaic attenuation",
    "Interlobular septal thickening": "septal thickening",
    "Peribronchial thickening": "peribronchial thickening",
    "Bronchiectasis": "bronchiectasis",
}
DENIAL_LIST: tuple[str, ...] = (
    "No {names} {seen} [in either lung|in the lung parenchyma|in both lungs|on this examination].",
    "[There is no|There is no evidence of] {names} in [either lung|the lungs|the lung parenchyma].",
)

# Descriptions of other, unlabelled abnormalities: they name no labelled finding and are abnormal sentences.
BONES_OLD: tuple[str, ...] = (
    "[Degenerative changes|Spondylotic changes|Marginal osteophytes] {seen_pl} in the [thoracic spine|thoracic vertebrae|vertebral endplates].",
    "[{Deg}|Age-related] degenerative changes {seen_pl} in the [thoracic spine|vertebral bodies][| with osteophytes].",
    "[{Deg}|A] thoracic kyphosis {seen}[| with degenerative changes].",
)
ABDOMEN_INCIDENTAL: tuple[str, ...] = (
    "Diffuse hypodensity of the liver [suggests|is consistent with] hepatic steatosis.",
    "A simple [cortical |]cyst of {mm} mm {seen} in the [left|right] kidney.",
    "A calcified gallstone[| of {mm} mm] {seen} in the gallbladder.",
    "An accessory spleen of {mm} mm {seen}[| near the splenic hilum].",
    "A {mm} mm hypodense [lesion|area] in the liver is too small to characterise[|, likely a cyst].",
)
RECOMMENDATION: tuple[str, ...] = (
    "[Clinical correlation|Correlation with clinical findings|Comparison with prior imaging] is [recommended|advised].",
    "[Follow-up|Control] CT [is recommended|may be considered][| in three months| after treatment].",
)

# Impression phrases: what a finding is called in the impression ({lobe} etc. repeat the findings' slots).
# Medical material names the device of its findings sentence: its phrases follow POSITIVE's order.
IMPRESSION: dict[str, tuple[str, ...]] = {
    "Medical material": ("[a central venous catheter|a central catheter] in place", "sternotomy wires", "[a pacemaker|a cardiac pacemaker] in place", "[a port catheter|a venous port catheter] in place", "[a nasogastric tube|a feeding tube] in place"),
    "Arterial wall calcification": ("[aortic|thoracic aortic|{deg} aortic] atherosclerosis[| of the {aortic_part}]", "aortic wall calcification[|s][| in the {aortic_part}]"),
    "Cardiomegaly": ("[{deg} |]cardiomegaly[| with an enlarged cardiac silhouette]",),
    "Pericardial effusion": ("[{deg} |]pericardial effusion[| up to {mm} mm]", "pericardial effusion, [{deg}|small] in amount"),
    "Coronary artery wall calcification": ("[{deg} |]coronary artery calcification", "coronary atherosclerosis[| with calcified plaques]"),
    "Hiatal hernia": ("[{deg} |small |sliding |]hiatal hernia",),
    "Lymphadenopathy": (
        # no {station} here: "aortopulmonary" beside a coronary "calcification" would read as aortic calcification
        "[mediastinal|mediastinal and hilar|hilar] lymphadenopathy[| up to {node_mm} mm]",
        "enlarged [mediastinal|hilar|mediastinal and hilar] lymph nodes[| up to {node_mm} mm][|, reactive?]",
    ),
    "Emphysema": ("[{deg} |centrilobular |paraseptal |]emphysema[| in {lobes_pl}]", "emphysematous changes[| in {lobes_pl}]"),
    "Atelectasis": ("[subsegmental |plate-like |]atelectasis in the {lobe}", "atelectasis[| in {lobes_pl}]"),
    "Lung nodule": (
        "[nonspecific |small |]lung nodule[s|][| in {lobes_pl}]",
        "[a |]{mm} mm nodule in the {lobe}[|, likely benign]",
    ),
    "Lung opacity": ("ground-glass opacities[| in the {lobe}| in {lobes_pl}][|, infection?|, inflammatory?]",),
    "Pulmonary fibrotic sequela": ("fibrotic sequelae[| in the {lobe}| in {lobes_pl}]", "[post-inflammatory |]fibrotic changes[| in the {lobe}]"),
    "Pleural effusion": ("{side} pleural effusion[| up to {mm} mm]", "pleural effusion on the {side_lr}"),
    "Mosaic attenuation pattern": ("mosaic attenuation[| pattern][| in {lobes_pl}][|, small airway disease?]",),
    "Peribronchial thickening": ("peribronchial thickening[| in {lobes_pl}][|, bronchitis?]",),
    "Consolidation": ("consolidation in the {lobe}[|, likely pneumonia|, infection?]", "[pneumonic |{deg} |]consolidation[| in {lobes_pl}]"),
    "Bronchiectasis": ("[cylindrical |]bronchiectasis[| in {lobes_pl}]",),
    "Interlobular septal thickening": ("[interlobular |]septal thickening[| in {lobes_pl}][|, interstitial edema?]",),
}
# fmt: on
