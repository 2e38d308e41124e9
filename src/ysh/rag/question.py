"""What a question asks (pure): its stemmed terms and their synonyms, acronyms and the
abbreviations the passages define, the kind of answer it wants (a duration, a date, a
value, a rule, a procedure, a definition) and its parts when it asks two things.
"""

from __future__ import annotations

import functools
import math
import re

from .chunking import PT_STOPWORDS, fold_text, hyphen_compounds, stem_token


_STOPWORDS = PT_STOPWORDS | set(fold_text(
    "já porque preciso precisa "
    # the wording of a question, not its content ("o que significa EMUC", "qual a diferença")
    "significa significam significado diferença diferenças chama chamado chamada hoje quer dizer "
    # pronouns and the asker's hedges ("o tal do parecer ainda existe? como ele se chama")
    "ele ela eles elas dele dela nele nela tal ainda "
    # adverbs of time that only place the question ("reiniciar depois de uma falha")
    "depois agora "
    # quantifiers: "quanto pesa cada placa" asks the weight, "cada" names nothing
    "cada qualquer "
    # "tenho que fixar", "o melhor horário": the asker's obligation and judgement, not
    # what a passage says ("melhor" met in one sentence would outweigh the asked words)
    "tenho temos melhor pior "
    # forms of "ser" ("quantos módulos foram usados"): "foram" stems to "for", a word
    # every "Foram adotadas…" sentence shares with the question
    "foram eram sera serao seria sido sendo "
    # "irradiância mínima pra fazer termografia": "fazer" is the asker's verb, not a fact
    # ("faz o autoteste", "feita pelas equipes" share it with any question)
    "fazer faz faco feito feita"
).split())


_THOUSANDS = re.compile(r"(?<![\d.,])(\d{1,3})((?:\.\d{3})+)(?![\d])")


#: a number typed against its unit ("fusível 15A", "1500V", "10mm"): the number is the
#: term, as in "15 A" of a datasheet (a model code such as "15G5" is left whole)
_GLUED_UNIT = re.compile(r"(?i)\b(\d+(?:[.,]\d+)?)(a|v|w|wp|kw|kwp|kwh|mwh|ka|ma|mm|mm2|cm|m|kg|hz|ghz|mhz|kva|ah|vcc|vca)\b")


def _terms(text: str) -> list[str]:
    # a number with thousands ("REN 1.000", "Lei 14.300", "61.034 W") is one term
    text = _THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(".", ""), text)
    text = _GLUED_UNIT.sub(r"\1 \2", text)
    terms = [t for t in fold_text(text).split() if t not in _STOPWORDS and (len(t) > 1 or t.isdigit())]
    return terms + hyphen_compounds(text)


def _stem(token: str) -> str:
    """The index's own stemming (answers and retrieval see one vocabulary), with the
    spelling change of the subjunctive undone: "comunique" / "fique" stem to "comuniqu" /
    "fiqu", their verbs "comunicar" / "ficar" to "comunic" / "fic"."""
    if token == "pes":  # "pés" (feet: "contêiner de 40 pés") is not "peso" / "pesa", which stem to "pes"
        return "pe"
    stem = stem_token(token)
    return stem[:-2] + "c" if stem.endswith("qu") and len(stem) >= 4 else stem


_COMPOUND_PREFIXES = ("micro", "mini")


def stems(text: str) -> set[str]:
    """Stemmed terms of ``text``; a code also gives its runs of 3+ digits (``JKM405M`` →
    ``405``: the power a model code carries)."""
    out = set()
    for term in _terms(text):
        out.add(_stem(term))
        for prefix in _COMPOUND_PREFIXES:  # "micro e minigeração" holds "geração"
            if term.startswith(prefix) and len(term) - len(prefix) >= 6:
                out.add(_stem(term[len(prefix):]))
        if not term.isdigit() and any(c.isdigit() for c in term):
            out.update(re.findall(r"\d{3,}", term))
    return out


#: words integrators use for one thing (Portuguese solar trade); a question term matches
#: a passage that uses any word of its group
_SYNONYM_GROUPS = (
    "placa placas painel paineis modulo modulos",
    "lavar lavagem limpar limpeza limpe lave",
    "concessionaria concessionarias distribuidora distribuidoras",
    "usina usinas gerador geradores sistema fotovoltaico",
    "conta contas fatura faturas",
    "horario hora horas periodo",
    "custa custo preco valor",
    "vale valem validade expira expiram vencem vence prazo",
    "trocar troca substituir substituicao",
    # the verb and its noun stem apart ("corrig" / "correca"): "prazo pra corrigir" is the
    # "programar correção em até 30 dias" of a table
    "corrigir corrige corrigida corrigido correcao correcoes",
    "garantia garante garantido",
    "tamanho dimensao dimensoes medida medidas",
    # "quanto ele gera por mês": the "geração mensal", "741 kWh por mês"
    "gera geram gerar gerada geracao produz produzem producao",
    "mes mensal mensais",
    # "o espaço livre embaixo do inversor": the "afastamentos mínimos… 500 mm abaixo"
    "espaco espacamento afastamento afastamentos distancia folga",
    "embaixo abaixo",
    "aviso avisos advertencia advertencias",
    # "qual o prazo pra avisar a YSH" / "devem ser comunicadas à YSH em até 48 horas"
    "avisar avise comunicar comunique informar informe notificar notifique",
    # "o módulo chegou trincado" is a damaged product ("avarias ocultas")
    "avaria avarias avariado avariados danificado danificados dano danos trincado trincados quebrado",
    "desconto abatimento",
    # "é impermeável? chove embaixo?": a cover that "não é estanque" / its "vedação"
    "impermeavel impermeaveis estanque estanques vedacao vedado vedada",
    "devolver devolucao devolucoes trocar troca",
    # "coeficientes térmicos" are the temperature coefficients
    "termico termicos termica temperatura temperaturas",
    # a "lava-jato" is a pressure washer
    "lavajato lavadora",
    # irregular participles, which the Snowball stemmer leaves apart from their verb
    # ("a RMA é aberta" answers "prazo para abrir a RMA")
    "abrir aberto aberta abertos abertas",
    "cobrir coberto coberta cobertos cobertas",
    "fazer feito feita feitos feitas",
    "escrever escrito escrita",
    "pagar pago paga pagos pagas",
    "entregar entregue entregues",
    "aceitar aceito aceita aceitos",
)


def _synonym_table(stem) -> dict[str, frozenset[str]]:
    table: dict[str, frozenset[str]] = {}
    for group in _SYNONYM_GROUPS:
        members = frozenset(stem(w) for w in group.split())
        for member in members:
            table[member] = table.get(member, frozenset()) | members
    return table


#: Brazil's states: name, UF, capital, region. A freight table lists regions or UFs, a
#: question names the city ("frete pra Salvador" is the "Nordeste" row, or "BA")
STATES = (
    ("Acre", "AC", "Rio Branco", "Norte"), ("Alagoas", "AL", "Maceió", "Nordeste"),
    ("Amapá", "AP", "Macapá", "Norte"), ("Amazonas", "AM", "Manaus", "Norte"),
    ("Bahia", "BA", "Salvador", "Nordeste"), ("Ceará", "CE", "Fortaleza", "Nordeste"),
    ("Distrito Federal", "DF", "Brasília", "Centro-Oeste"), ("Espírito Santo", "ES", "Vitória", "Sudeste"),
    ("Goiás", "GO", "Goiânia", "Centro-Oeste"), ("Maranhão", "MA", "São Luís", "Nordeste"),
    ("Mato Grosso", "MT", "Cuiabá", "Centro-Oeste"), ("Mato Grosso do Sul", "MS", "Campo Grande", "Centro-Oeste"),
    ("Minas Gerais", "MG", "Belo Horizonte", "Sudeste"), ("Pará", "PA", "Belém", "Norte"),
    ("Paraíba", "PB", "João Pessoa", "Nordeste"), ("Paraná", "PR", "Curitiba", "Sul"),
    ("Pernambuco", "PE", "Recife", "Nordeste"), ("Piauí", "PI", "Teresina", "Nordeste"),
    ("Rio de Janeiro", "RJ", "Rio de Janeiro", "Sudeste"), ("Rio Grande do Norte", "RN", "Natal", "Nordeste"),
    ("Rio Grande do Sul", "RS", "Porto Alegre", "Sul"), ("Rondônia", "RO", "Porto Velho", "Norte"),
    ("Roraima", "RR", "Boa Vista", "Norte"), ("Santa Catarina", "SC", "Florianópolis", "Sul"),
    ("São Paulo", "SP", "São Paulo", "Sudeste"), ("Sergipe", "SE", "Aracaju", "Nordeste"),
    ("Tocantins", "TO", "Palmas", "Norte"),
)


#: place names that fold to everyday words ("para", "natal", "vitoria", "palmas")
_COMMON_WORDS = frozenset({"para", "natal", "vitoria", "palmas"})


def place_terms(question: str) -> set[str]:
    """The UF and region (stemmed terms) of each Brazilian state or capital the
    question names, for the passages that list places that way; the longest name wins
    ("Mato Grosso do Sul" is not "Mato Grosso")."""
    folded = f" {fold_text(question)} "
    found: set[str] = set()
    for state, uf, capital, region in sorted(STATES, key=lambda x: -len(x[0])):
        for name in (state, capital):
            key = f" {fold_text(name)} "
            if key.strip() in _COMMON_WORDS and not re.search(rf"\b{re.escape(name)}\b", question):
                continue  # "para" is a preposition, "natal" Christmas: only "Pará", "Natal" as written
            if key in folded:
                folded = folded.replace(key, " ")
                found |= stems(region) | {uf.lower()}
    return found


@functools.lru_cache(maxsize=1)
def _synonyms() -> dict[str, frozenset[str]]:
    """The synonym groups as the answerer stems (:func:`_stem`)."""
    return _synonym_table(_stem)


@functools.lru_cache(maxsize=1)
def index_synonyms() -> dict[str, frozenset[str]]:
    """The synonym groups as the lexical index stems (``chunking.stem_token``, which
    :func:`ysh.rag.chunking.analyze_pt` uses: "comunique" stays "comuniqu" there)."""
    return _synonym_table(stem_token)


#: a stem this long that begins another is the same word family ("desist" of "desisti" and
#: "desistenc" of "desistência", which Snowball cuts apart)
_MIN_PREFIX = 5


def _matches(term: str, words: set[str]) -> bool:
    if term in words or _synonyms().get(term, frozenset()) & words:
        return True
    if len(term) < _MIN_PREFIX or term.isdigit():
        return False
    return any(len(w) >= _MIN_PREFIX and not w.isdigit() and (w.startswith(term) or term.startswith(w))
               for w in words)


def sentence_score(question_terms: set[str], sentence: str) -> float:
    """How well ``sentence`` answers: matched question terms (stemmed), numbers and
    longer words weighing more."""
    words = stems(sentence)
    score = 0.0
    for term in question_terms:
        if term in words:
            score += 2.0 if any(c.isdigit() for c in term) else 1.0 + min(len(term), 10) / 10
    return score


_NUMBER_WITH_UNIT = re.compile(
    r"\d[\d.,]*\s*(%|°c|ºc|kwh|kwp|kw|wp|w\b|v\b|a\b|mm|cm|m\b|kg|anos?|meses|mes|dias?|horas?|minutos?|"
    r"r\$|reais|vezes|modulos?|unidades)|r\$\s*\d", re.I)
_DURATION = re.compile(r"\d+\s*(dias?|meses|mes|anos?|horas?|minutos?|semanas?)\b|\bate\s+\d{4}\b", re.I)
_DATE = re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{1,2} de [a-z]+ de \d{4}\b|\b(19|20)\d{2}\b", re.I)
_RULE_WORDS = re.compile(r"\b(pode|podem|nao pode|deve|devem|vedad|proibid|permitid|obrigatori|exige|limitad|"
                         r"nao e|e necessari|precisa|dispensad|somente|apenas)", re.I)
_STEP_WORDS = re.compile(r"^\s*(\d+[.)]|passo|primeiro|depois|em seguida|desligue|ligue|verifique|aguarde|abra|"
                         r"feche|confira|meca|limpe|lave|use|nao use|remova|aperte|substitua|registre|solicite|"
                         r"protocole|envie)", re.I)


#: how integrators type in a chat ("qto tempo vale", "pq so aceita 2", "qdo vence"): the
#: words these stand for, so the question's kind and parts read as if typed in full
_CHAT_WORDS = {"qto": "quanto", "qnto": "quanto", "qta": "quanta", "qtos": "quantos", "qntos": "quantos",
               "qtas": "quantas", "qts": "quantos", "qdo": "quando", "qnd": "quando", "qndo": "quando",
               "pq": "porque", "vc": "você", "vcs": "vocês", "tb": "também", "tbm": "também", "oq": "o que",
               "hj": "hoje", "msm": "mesmo"}
_CHAT_WORD = re.compile(r"(?i)(?<![\w-])(" + "|".join(_CHAT_WORDS) + r")(?![\w-])")


def chat_expanded(question: str) -> str:
    """``question`` with chat abbreviations written out ("qto tempo" → "quanto tempo")."""
    return _CHAT_WORD.sub(lambda m: _CHAT_WORDS[m.group(1).lower()], question)


def question_kind(question: str) -> str:
    """``duration`` | ``date`` | ``value`` | ``procedure`` | ``rule`` | ``definition`` |
    ``other``: what the question asks for, from its wording."""
    q = fold_text(question)
    if re.search(r"\b(prazo|quantos dias|quantos meses|quantos anos|quanto tempo|em quanto|validade|expira|vence|"
                 r"vencem|dura|duracao|depois de quanto)\b", q):
        return "duration"
    if re.search(r"\b(quando|que dia|que data|qual data|qual a data|qual e a data|desde quando|a partir de quando|"
                 r"em que ano)\b", q):
        return "date"
    if re.search(r"\b(como|procedimento|passo|passos|o que (eu )?(faco|fazer|devo fazer)|qual a sequencia)\b", q):
        return "procedure"
    if yes_no_tail(question):  # "…a taxa de iluminação pública (CIP) que vem na conta. Abatem?"
        return "rule"
    if re.search(r"\b(quanto|quantos|quantas|qual o valor|qual a tarifa|percentual|porcentagem|limite|tamanho|peso|"
                 r"pesa|eficiencia|corrente|tensao|potencia|preco|custa|taxa|coeficiente|garante|parcela)\b", q):
        return "value"
    if re.match(r"\s*(posso|pode|podem|preciso|precisa|devo|deve|e permitido|e obrigatorio|existe|tem que|"
                r"sou obrigado|e possivel|vale|continua|ainda)\b", q):
        return "rule"
    if re.match(r"\s*(quais|liste|listar|cite|o que (conferir|verificar|checar|levar|inspecionar|procurar))\b", q):
        return "list"
    if re.search(r"\b(o que e|o que sao|o que significa|o que quer dizer|significado|defina|definicao|"
                 r"pra que serve|para que serve|pra que servem|para que servem|qual a funcao)\b", q):
        return "definition"
    return "other"


_WH_WORDS = frozenset("qual quais quanto quanta quantos quantas quando como onde quem que porque pq oq".split())


def yes_no_tail(question: str) -> set[str]:
    """The stems of a short yes/no question that ends a longer message after its context
    ("O cliente perguntou se os créditos abatem a CIP que vem na conta. Abatem?"): its one
    or two words are what is asked; empty for other shapes."""
    sentences = [x for x in re.split(r"(?<=[?.!])\s+", question.strip()) if x]
    if len(sentences) < 2 or not sentences[-1].rstrip().endswith("?"):
        return set()
    words = fold_text(sentences[-1]).split()
    if not 1 <= len(words) <= 2 or words[0] in _WH_WORDS:
        return set()
    # the context before it states, it does not ask ("Qual o disjuntor…? 32A?" asks a value)
    if any(x.rstrip().endswith("?") for x in sentences[:-1]):
        return set()
    return stems(sentences[-1])


def list_items(parts: list[str]) -> int:
    """How many items a unit holds after its lead-in (0 for a single sentence)."""
    return len(parts) - 1 if len(parts) > 1 else 0


def _kind_bonus(kind: str, text: str) -> float:
    folded = fold_text(text)
    if kind == "duration":
        return 1.5 if _DURATION.search(folded) else 0.0
    if kind == "date":
        return 1.2 if _DATE.search(text) else 0.0
    if kind == "value":
        return 1.2 if _NUMBER_WITH_UNIT.search(text) else (0.4 if re.search(r"\d", text) else 0.0)
    if kind == "procedure":
        return 0.8 if _STEP_WORDS.search(folded) else 0.0
    if kind == "rule":
        return 0.8 if _RULE_WORDS.search(folded) else 0.0
    if kind == "definition":
        return 0.6 if re.search(r"\b(e|sao|significa|corresponde|chamad[oa])\b", folded) else 0.0
    return 0.0


_ABBREVIATION_AFTER = re.compile(r"([^\W\d_][\w-]*(?:\s+[\w-]+){0,4})\s+\(([A-Z][A-Za-z0-9]{1,7})\)")
_ABBREVIATION_BEFORE = re.compile(r"\b([A-Z][A-Z0-9]{1,7})\s+\(([^\W\d_][\w-]*(?:\s+[\w-]+){0,5})\)")


#: the symbols of a PV datasheet, which a datasheet uses without defining ("Pmax: 440 W"
#: answers "a potência do módulo"; "Voc" is the "tensão de circuito aberto")
DATASHEET_SYMBOLS = {
    "pmax": "potência máxima", "pmp": "potência máxima", "voc": "tensão de circuito aberto",
    "isc": "corrente de curto-circuito", "vmp": "tensão de máxima potência",
    "vmpp": "tensão de máxima potência", "imp": "corrente de máxima potência",
    "impp": "corrente de máxima potência", "noct": "temperatura nominal de operação da célula",
    "nmot": "temperatura nominal de operação do módulo", "stc": "condições padrão de teste",
    "mppt": "rastreador do ponto de máxima potência", "dps": "dispositivo de proteção contra surtos",
}


@functools.lru_cache(maxsize=1)
def _datasheet_symbols() -> dict[str, frozenset[str]]:
    return {symbol: frozenset(stems(meaning)) for symbol, meaning in DATASHEET_SYMBOLS.items()}


def abbreviations(texts: list[str]) -> dict[str, set[str]]:
    """Abbreviations the texts define, folded → the stems of what they stand for:
    "Potência máxima (Pmax)" and "TIR (taxa interna de retorno)" (the first word opens
    with the abbreviation's first letter, so "1500 V CC (IEC)" defines nothing), and the
    datasheet symbols every datasheet uses undefined (:data:`DATASHEET_SYMBOLS`)."""
    found: dict[str, set[str]] = {symbol: set(meaning) for symbol, meaning in _datasheet_symbols().items()}
    for text in texts:
        for match in _ABBREVIATION_AFTER.finditer(text):
            words, short = match.group(1).split(), match.group(2)
            for i in range(len(words) - 1, -1, -1):  # the shortest run that opens with its letter
                if fold_text(words[i])[:1] == fold_text(short)[:1]:
                    found.setdefault(fold_text(short), set()).update(stems(" ".join(words[i:])))
                    break
        for match in _ABBREVIATION_BEFORE.finditer(text):
            short, words = match.group(1), match.group(2)
            if fold_text(words)[:1] == fold_text(short)[:1]:
                found.setdefault(fold_text(short), set()).update(stems(words))
    return found


_PART_SPLIT = re.compile(r"\s*(?:,\s*|\s)e\s+(?=(?:qual|quais|quanto|quanta|quantos|quantas|como|onde|quando|"
                         r"o que|quem|por que|em que)\b)", re.I)


_DIFFERENCE = re.compile(r"diferen[cç]as?\s+(?:(?:de|do|da|dos|das|no|na|nos|nas|em)\s+(.+?)\s+)?entre\s+"
                         r"(?:[oa]s?\s+)?(.+?)\s+e\s+(?:[oa]s?\s+)?(.+?)\s*[?.!]*$", re.I)
#: "compare o X com o Y", "o X ou o Y: qual tem mais …"
_COMPARE = re.compile(r"compar\w*\s+(?:[oa]s?\s+)?(.+?)\s+(?:com|e)\s+(?:[oa]s?\s+)?(.+?)\s*[?.!]*$", re.I)


#: a model code as a question writes it ("TMI-1800Q", "MHB-10.2H", "2250Q"): letters and
#: digits in one token
_CODE_IN_QUESTION = r"[A-Za-z0-9](?:[\w./-]*[A-Za-z0-9])?"
_ALTERNATIVES = re.compile(r"(?:\b(?:o|a|os|as|do|da)\s+)?(" + _CODE_IN_QUESTION + r")\s+(?:ou|vs\.?|versus|x)\s+"
                           r"(?:(?:o|a|os|as|do|da)\s+)?(" + _CODE_IN_QUESTION + r")(?![\w-])", re.I)
#: a number with a unit written together ("550W", "5ghz", "32A"): a quantity, not a model code
_UNIT_TOKEN = re.compile(r"(?i)^\d+(?:[.,]\d+)?(?:w|wp|kw|kwp|kwh|mw|mwh|v|kv|a|ah|mah|mm|mm2|cm|m|km|kg|g|hz|khz|ghz|"
                         r"mbps|gb|mb|h|min|s|anos?|meses|dias|x|%)$")
#: the words that only say a question compares ("qual dos dois", "qual das duas"; folded)
_COMPARISON_WORDS = re.compile(r"(?i)\b(?:dois|duas|ambos|ambas)\b")


def compact_code(text: str | None) -> str:
    """Folded letters and digits only: "TMI-1800Q" → "tmi1800q" (a code however it is written)."""
    return re.sub(r"[^0-9a-z]", "", fold_text(text or ""))


def _is_code(token: str) -> bool:
    return (len(token) >= 3 and bool(re.search(r"\d", token)) and bool(re.search(r"[A-Za-z]", token))
            and not _UNIT_TOKEN.match(token))


def alternatives(question: str) -> tuple[str, str, str] | None:
    """A question that asks which of two models ("qual aceita maior corrente, o TMI-1600Q
    ou o TMI-1800Q?", "qual das duas permite mais torres, a MHB-10.2H ou a MHB-15.4H?"):
    (first code, second code, what is asked of both: the question without the two codes
    and the words that only say it compares); None otherwise."""
    for match in _ALTERNATIVES.finditer(question):
        first, second = match.group(1), match.group(2)
        if _is_code(first) and _is_code(second) and compact_code(first) != compact_code(second):  # not "NR10 ou NR-10"
            asked = question[:match.start()] + " " + question[match.end():]
            asked = _COMPARISON_WORDS.sub(" ", asked).replace("?", " ")
            return first, second, " ".join(asked.replace(",", " ").split())
    return None


def question_parts(question: str) -> list[str]:
    """A question that asks two things ("Quanto pesa e qual o tamanho do módulo?", "a
    diferença entre SAC e Price", "qual tem mais …, o A ou o B?") in its parts; one part
    otherwise."""
    alternative = alternatives(question)
    if alternative:  # what is asked, of each model
        first, second, asked = alternative
        return [f"{asked} {first}", f"{asked} {second}"]
    difference = _DIFFERENCE.search(question)
    if difference:
        # "a diferença de moldura entre o A e o B": each part is one side with the topic
        topic = difference.group(1) or ""
        return [f"{topic} {difference.group(2)}".strip(), f"{topic} {difference.group(3)}".strip()]
    compare = _COMPARE.search(question)
    if compare:
        return [compare.group(1), compare.group(2)]
    # two questions in one message ("… ainda existe? Como ele se chama hoje?") are two parts
    return [p for sentence in re.split(r"(?<=\?)\s+(?=\S)", question)
            for p in _PART_SPLIT.split(sentence) if p.strip()]


def _acronyms(question: str) -> set[str]:
    """Acronyms written in capitals (TE, TUSD, SAC, TIR, EMUC): terms even when the
    folded word is a stop word ("te")."""
    return {fold_text(m) for m in re.findall(r"\b[A-Z][A-Z0-9]{1,6}\b", question)}


#: a number and the unit word after it; single letters only for units ("15 K", "600 V",
#: "300 W": never the preposition "a" of "de 3 a 5 dias")
_QUANTITY = re.compile(r"\b(\d+(?:[.,]\d+)?)\s*([a-z]{2,}|%|[kvw]\b)")
_RANGES = (
    # "de 10 a 20 K", "de 10 K a 20 K"
    (re.compile(r"\b(\d+(?:[.,]\d+)?)\s*(?:(?:[a-z]{2,}|%|[kvw])\s+)?(?:a|ate)\s*(\d+(?:[.,]\d+)?)\s*"
                r"([a-z]{2,}|%|[kvw]\b)"), "between"),
    (re.compile(r"\b(\d+(?:[.,]\d+)?)\s*([a-z]{2,}|%|[kvw]\b)\s+ou mais\b"), "from"),
    (re.compile(r"\b(?:acima de|mais de|a partir de)\s+(\d+(?:[.,]\d+)?)\s*([a-z]{2,}|%|[kvw]\b)"), "above"),
    (re.compile(r"\b(?:ate|abaixo de|menos de)\s+(\d+(?:[.,]\d+)?)\s*([a-z]{2,}|%|[kvw]\b)"), "below"),
)


def _number(text: str) -> float:
    """A number as Brazilians write it: ``2,5`` and ``1.000,5`` (comma decimal, dot
    thousands), ``14.300`` (dot thousands); ``2.5`` (a dot before other than three
    digits) read as a decimal point."""
    if "," in text:
        return float(text.replace(".", "").replace(",", "."))
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+", text):
        return float(text.replace(".", ""))
    return float(text)


#: fold_text turns every punctuation mark into a space ("2,5 kWh" → "2 5 kwh": the
#: quantity would read as 5 kWh); a separator between digits is kept through the fold
_DIGIT_SEPARATOR = re.compile(r"(?<=\d)([.,])(?=\d)")
_SEPARATOR_MARK = {".": "zqdotqz", ",": "zqcommaqz"}


#: a code's letters, hyphen (or dot) and number ("F-201", "ERR-305", "E.201"): one token,
#: so its number is no quantity
_CODE_HYPHEN = re.compile(r"\b([A-Za-z]{1,5})[-.‐‑](?=\d)")


def _folded_with_percent(text: str) -> str:
    text = _CODE_HYPHEN.sub(r"\1", text)
    marked = _DIGIT_SEPARATOR.sub(lambda m: _SEPARATOR_MARK[m.group(1)], text.replace("%", " pct "))
    folded = fold_text(marked).replace(" pct", " %")
    for separator, mark in _SEPARATOR_MARK.items():
        folded = folded.replace(mark, separator)
    return re.sub(r"\s+", " ", folded)


def range_agreement(question: str, text: str) -> float:
    """Whether the text's ranges hold the quantities the question names: +1 when a range
    of the same unit holds one ("6 paletes" in "5 a 9 paletes", "12 paletes" in "10
    paletes ou mais"), −0.5 when the text's ranges of that unit all leave it out, 0 when
    the text has no range of that unit."""
    asked = [(_number(n), _stem(u) if u != "%" else u) for n, u in _QUANTITY.findall(_folded_with_percent(question))]
    if not asked:
        return 0.0
    folded = _folded_with_percent(text)
    found: list[tuple[float, float, str]] = []  # (low, high, unit)
    for pattern, shape in _RANGES:
        for match in pattern.finditer(folded):
            groups = match.groups()
            if shape == "between":
                low, high, unit = _number(groups[0]), _number(groups[1]), groups[2]
            elif shape in ("from", "above"):
                low, high, unit = _number(groups[0]), math.inf, groups[1]
            else:
                low, high, unit = -math.inf, _number(groups[0]), groups[1]
            found.append((low, high, _stem(unit) if unit != "%" else unit))
    score = 0.0
    for value, unit in asked:
        same = [(low, high) for low, high, u in found if u == unit]
        if any(low <= value <= high for low, high in same):
            return 1.0
        if same:
            score = -0.5
    return score


_HEAD = re.compile(r"^\s*(?:qual|quais|quanto|quanta|quantos|quantas)\s+(?:e\s+|sao\s+)?(?:o|a|os|as)?\s*"
                   r"((?:\w+\s+){0,2}?\w+)\s+(?:do|da|dos|das|de|no|na|nos|nas|para|em|pelo|pela|que)\s")


#: a question written as a bare noun phrase ("payback do memorial considerando a subida do
#: fio B", "consumo diario do exemplo"): its first noun is what it asks for, as X in "qual o
#: X do Y"
_BARE_HEAD = re.compile(r"^\s*(?:o|a|os|as)?\s*([a-z]\w{2,})\s+(?:do|da|dos|das|de|no|na|nos|nas|para|pelo|pela)\s")


def question_head(question: str) -> set[str]:
    """The stems of what a "qual o X do Y" question asks for: X ("a TIR do exemplo
    residencial", "o peso da bateria"), the thing Y only places it; the first noun of a
    question written without a question word ("payback do memorial …"). Empty for other
    shapes."""
    folded = fold_text(question) + " "
    match = _HEAD.match(folded)
    if match:
        return stems(match.group(1))
    if not set(folded.split()) & _WH_WORDS and question_kind(question) == "other":
        bare = _BARE_HEAD.match(folded)
        if bare:
            return stems(bare.group(1))
    return set()


#: "quantos micro…", "quantas baterias…": the thing counted
_COUNTED = re.compile(r"\bquant[oa]s\s+(?:sao\s+|os\s+|as\s+)*([a-z]{3,})")


_COUNTERS = ("unidade", "peca")
#: "quantos JAM72S30…", a model code counted: the token after "quantos" holds a digit
_COUNTED_CODE = re.compile(r"(?<=\s)(?=[a-z]*\d)[a-z0-9]{3,}")
#: how a count of equipment is written ("11 módulos", "4 inversores", "2 unidades")
_EQUIPMENT = ("modul", "placa", "paine", "inver", "micro", "bater", "unida", "peca")


def count_agreement(question: str, text: str) -> float:
    """1 when a "quantos X" question meets a number directly before X in the text ("uma
    ECU atende até 80 microinversores" for "quantos micro uma ECU monitora"; the first
    five letters decide, so "micro" is "microinversores"), else 0: the sentence that
    counts the asked thing, not one with other numbers."""
    folded = fold_text(question)
    asked = _COUNTED.search(folded)
    if not asked:
        return 0.0
    tokens = fold_text(text).split()
    code = _COUNTED_CODE.search(folded)
    if code and code.start() == asked.start(1):
        # "quantos AUR72-HC550M em série": a model counted is counted as equipment
        # ("no máximo 11 módulos por string")
        counters = _EQUIPMENT
    else:
        prefix = asked.group(1)[:5]
        # "2 unidades" counts the thing its sentence names ("Com baterias …, são necessárias 2 unidades")
        counters = (prefix, *(_COUNTERS if any(t.startswith(prefix) for t in tokens) else ()))
    return 1.0 if any(t.isdigit() and nxt.startswith(counters) for t, nxt in zip(tokens, tokens[1:])) else 0.0


def quantities(text: str) -> set[tuple[str, str]]:
    """The numbers of ``text`` with the unit word after them, as (number, stemmed unit):
    "6 paletes" → ("6", "palet"), "15%" → ("15", "%")."""
    return {(n, _stem(u) if u != "%" else u) for n, u in _QUANTITY.findall(_folded_with_percent(text))
            if u not in _STOPWORDS}  # "F-201 no inversor": "no" is no unit


#: what a measured attribute is measured in: the question's words (folded) → the units a
#: value of it is written in. "Quanto pesa…" is answered by "28,6 kg", not by the "6,6 kWp"
#: of a sentence sharing the model code; "o espaço livre embaixo" by "500 mm".
_ATTRIBUTE_UNITS = (
    (re.compile(r"\b(pesa|pesam|peso|pesos)\b"), r"kg|g|t"),
    (re.compile(r"\b(bitola|secao do cabo|secao minima)\b"), r"mm²|mm2"),
    (re.compile(r"\b(espaco|espacamento|distancia|afastamento|altura|largura|comprimento|profundidade|"
                r"dimensoes|dimensao|mede|medem|folga)\b"), r"mm|cm|m"),
    (re.compile(r"\b(tensao|voltagem|voc|vmp|vmpp|volts?)\b"), r"v|kv|mv"),
    # "16 A", never the preposition of "de 3 a 5 dias" (the unit is matched with its case)
    (re.compile(r"\b(corrente|isc|imp|impp|amperes?|amperagem)\b"), r"(?-i:A|mA)"),
    (re.compile(r"\b(gera|geram|geracao|produz|produzem|producao|energia gerada)\b"), r"kwh|mwh|wh"),
    (re.compile(r"\b(temperatura|graus)\b"), r"°c|ºc"),
    (re.compile(r"\b(carga mecanica|pressao)\b"), r"pa|kpa"),
    # what a worked example computes: payback in years, autonomy in days or hours, daily
    # consumption in Wh (or kWh) per day
    (re.compile(r"\b(payback|retorno do investimento|tempo de retorno)\b"), r"anos?|meses"),
    (re.compile(r"\b(autonomia)\b"), r"dias?|horas?|h"),
    (re.compile(r"\b(consumo diario|consumo por dia|consumo de energia diario)\b"), r"wh/dia|kwh/dia"),
)
#: "quantos kWp…", "quantos kg": the unit asked by name
_ASKED_UNIT = re.compile(r"\bquant[oa]s?\s+(kwp|kwh|kw|wp|w|kg|mm|cm|v|pa|mwh)\b")  # "quanto a…" is "as for"


def asked_units(question: str) -> re.Pattern | None:
    """The units the value asked for is written in, as a pattern over a passage's text
    (``None`` when the question names no measured attribute): "quantos kWp…" asks kWp,
    "quanto pesa…" kg, "a Voc a 0 °C" volts. The unit named after "quantos" wins; else
    every attribute the question names counts."""
    folded = fold_text(question)
    named = _ASKED_UNIT.search(folded)
    if named:
        units = named.group(1)
    else:
        units = "|".join(u for pattern, u in _ATTRIBUTE_UNITS if pattern.search(folded))
    if not units:
        return None
    # "Peso 28,6 kg", or a table row whose label gives the unit: "Isc (A) — 10,55 — 10,60"
    return re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*\s?(?:" + units + r")(?![\w/])|\(\s*(?:" + units + r")\s*\)", re.I)


def unit_agreement(asked: re.Pattern | None, text: str) -> float:
    """+1 when the text holds a number in the asked unit; −0.5 when it holds numbers with
    other units and none in the asked one (a value of another attribute); 0 otherwise."""
    if asked is None:
        return 0.0
    if asked.search(text):
        return 1.0
    return -0.5 if _MEASURE.search(text) else 0.0


#: a measured value, its number standing alone (the "550M" of a model code is none)
_MEASURE = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*\s?(?:%|°c|ºc|kwh|mwh|wh|kwp|kw|mw|wp|w|kv|v|(?-i:mA|A)|mm²|mm|cm|m|"
                      r"kg|g|pa|kpa)(?!\w)|r\$\s*\d", re.I)


_DEFINED = re.compile(r"\b(?:o que (?:e|sao|significa|quer dizer)|defina|definicao de|significado de|"
                      r"p(?:a)?ra que serve[m]?|qual a funcao d[oae]s?)\s+"
                      r"(?:(?:o|a|os|as|um|uma)\s+)?([a-z0-9]+(?:\s+(?!(?:e|ou|o|a)\b)[a-z0-9]+){0,2})")


def defined_term(question: str) -> set[str]:
    """The stems of the term a definition question asks about ("o que é a TIR de um
    projeto solar" → TIR; "o que é clipping no inversor" → clipping): its first word,
    the rest places it."""
    found: set[str] = set()
    for match in _DEFINED.finditer(fold_text(question)):  # "o que é TE e o que é TUSD": both
        words = match.group(1).split()
        word = next((w for w in words if w not in _STOPWORDS), words[0])  # "a função de cada DPS": DPS
        found |= stems(word) or {word}  # "TE" is also a stop word ("te"): kept as it is
    return found


def defines(term: set[str], text: str) -> bool:
    """Whether ``text`` is a definition of ``term``: the term, or its abbreviation in
    parentheses, within the first words, followed by "é", "são", "significa" or a label's
    colon ("Clipping (ceifamento): Perda que…", "A taxa interna de retorno (TIR) é…")."""
    if not term:
        return False
    label = _DASH_LABEL.match(text)  # "TUSD - Tarifa de Uso do Sistema de Distribuição."
    if label and term & (stems(label.group(1)) | {fold_text(label.group(1))}):
        return True
    # the verb is looked for before folding: folded, "é" (is) would be "e" (and), and "a TIR
    # e o VPL" would define the TIR
    head = _DEFINING.split(text, 1)
    if len(head) < 2:
        return False
    words = fold_text(head[0]).split()
    return 0 < len(words) <= 10 and bool(term & (stems(head[0]) | set(words)))


#: what joins a term to its definition: "X é …", "X são …", "X significa …", "X: …"
_DEFINING = re.compile(r"\s(?:é|são|significa|significam|corresponde|consiste)\s|:\s", re.I)


#: a glossary line "TUSD - Tarifa de Uso…", "Fio B — parcela da TUSD…": the term before a spaced dash
_DASH_LABEL = re.compile(r"^\s*(?:[-*•]\s*)?([^\W\d_][^.:;!?=+]{0,40}?)\s[-—–]\s+\S")
