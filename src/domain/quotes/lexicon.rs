//! The closed-class Spanish words the parser knows: number words, multipliers
//! (docena, par), units, attribute markers and filler. Product words never
//! live here: they come from the catalog.
//!
//! Words are in folded form (lower case, no accents).

/// A number word and how it combines with its neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberWord {
    /// 1–9: after a tens word and "y", or alone.
    Unit(u32),
    /// 10–29 (diez … veintinueve): alone or after hundreds.
    Teen(u32),
    /// 30–90: may be followed by "y" and a unit.
    Tens(u32),
    /// cien, ciento, doscientos … novecientos.
    Hundreds(u32),
    /// "cientos" after a unit: "dos cientos".
    Cientos,
    /// mil: multiplies what came before (or 1).
    Thousand,
}

pub fn number_word(w: &str) -> Option<NumberWord> {
    use NumberWord::*;
    Some(match w {
        "un" | "uno" | "una" => Unit(1),
        "dos" => Unit(2),
        "tres" => Unit(3),
        "cuatro" => Unit(4),
        "cinco" => Unit(5),
        "seis" => Unit(6),
        "siete" => Unit(7),
        "ocho" => Unit(8),
        "nueve" => Unit(9),
        "diez" | "dies" => Teen(10),
        "once" => Teen(11),
        "doce" => Teen(12),
        "trece" => Teen(13),
        "catorce" => Teen(14),
        "quince" => Teen(15),
        "dieciseis" => Teen(16),
        "diecisiete" => Teen(17),
        "dieciocho" => Teen(18),
        "diecinueve" => Teen(19),
        "veinte" => Teen(20),
        "veintiun" | "veintiuno" | "veintiuna" | "ventiuno" | "ventiun" => Teen(21),
        "veintidos" => Teen(22),
        "veintitres" => Teen(23),
        "veinticuatro" => Teen(24),
        "veinticinco" => Teen(25),
        "veintiseis" => Teen(26),
        "veintisiete" => Teen(27),
        "veintiocho" => Teen(28),
        "veintinueve" => Teen(29),
        "treinta" => Tens(30),
        "cuarenta" => Tens(40),
        "cincuenta" => Tens(50),
        "sesenta" => Tens(60),
        "setenta" => Tens(70),
        "ochenta" => Tens(80),
        "noventa" => Tens(90),
        "cien" | "ciento" => Hundreds(100),
        "doscientos" | "doscientas" => Hundreds(200),
        "trescientos" | "trescientas" => Hundreds(300),
        "cuatrocientos" | "cuatrocientas" => Hundreds(400),
        "quinientos" | "quinientas" => Hundreds(500),
        "seiscientos" | "seiscientas" => Hundreds(600),
        "setecientos" | "setecientas" => Hundreds(700),
        "ochocientos" | "ochocientas" => Hundreds(800),
        "novecientos" | "novecientas" => Hundreds(900),
        "cientos" | "cientas" => Cientos,
        "mil" => Thousand,
        _ => return None,
    })
}

/// Words that multiply the quantity before them (or stand for it alone).
pub fn multiplier(w: &str) -> Option<u32> {
    match w {
        "docena" | "docenas" => Some(12),
        "par" | "pares" => Some(2),
        _ => None,
    }
}

/// "medio"/"media": a half, but only before a unit or "docena" (else "medias"
/// may be socks and "media" a word of a product name).
pub fn is_half(w: &str) -> bool {
    matches!(w, "medio" | "media")
}

/// Units a quantity is counted in ("2 kilos de", "3 latas de"). A catalog
/// match beats this reading unless "de" follows.
pub fn is_unit(w: &str) -> bool {
    matches!(
        w,
        "kilo" | "kilos" | "kg" | "kgs" | "kilogramo" | "kilogramos" | "k"
            | "gramo" | "gramos" | "gr" | "grs" | "g"
            | "litro" | "litros" | "lt" | "lts" | "l"
            | "lata" | "latas" | "caja" | "cajas" | "paquete" | "paquetes" | "paq"
            | "bolsa" | "bolsas" | "pieza" | "piezas" | "pz" | "pza" | "pzs" | "pzas"
            | "botella" | "botellas" | "frasco" | "frascos" | "sobre" | "sobres"
            | "rollo" | "rollos" | "unidad" | "unidades" | "u" | "und" | "unds"
            | "bote" | "botes" | "costal" | "costales" | "bulto" | "bultos"
            | "metro" | "metros" | "mt" | "mts" | "galon" | "galones" | "tarro" | "tarros"
            | "charola" | "charolas" | "six" | "pack" | "packs" | "paquetito" | "paquetitos"
    )
}

/// One spelling per unit of measure, so "600 ml" in a catalog name meets
/// "600 mililitros" in a message and "2 L" meets "2 litros".
pub fn canonical_unit(w: &str) -> Option<&'static str> {
    Some(match w {
        "ml" | "mililitro" | "mililitros" => "ml",
        "l" | "lt" | "lts" | "litro" | "litros" => "l",
        "kg" | "kgs" | "kilo" | "kilos" | "kilogramo" | "kilogramos" => "kg",
        "g" | "gr" | "grs" | "gramo" | "gramos" => "g",
        "oz" | "onza" | "onzas" => "oz",
        "cm" | "centimetro" | "centimetros" => "cm",
        "mm" | "milimetro" | "milimetros" => "mm",
        "m" | "mt" | "mts" | "metro" | "metros" => "m",
        "pulgada" | "pulgadas" | "pulg" => "pulg",
        "pz" | "pza" | "pzs" | "pzas" | "pieza" | "piezas" => "pz",
        _ => return None,
    })
}

/// Words after which a number is an attribute, not a quantity ("talla 42").
pub fn is_attribute_marker(w: &str) -> bool {
    matches!(
        w,
        "talla" | "tallas" | "numero" | "num" | "nro" | "no" | "n" | "modelo" | "medida" | "medidas"
            | "size" | "tamano" | "del" | "color" | "ref" | "referencia" | "codigo" | "cod" | "version"
            | "serie" | "ano" | "calibre" | "tipo" | "pedido" | "orden" | "folio"
    )
}

/// Words after a number that make it a specification ("600 ml", "20 %").
pub fn is_attribute_suffix(w: &str) -> bool {
    matches!(
        w,
        "ml" | "mililitros" | "cl" | "cm" | "mm" | "centimetros" | "milimetros" | "pulgadas" | "pulgada"
            | "gb" | "mb" | "tb" | "mah" | "w" | "watts" | "v" | "volts" | "hz" | "oz" | "onzas" | "mg"
            | "grados" | "hrs" | "horas" | "min" | "minutos" | "am" | "pm" | "dias" | "pesos" | "soles"
            | "dolares" | "usd" | "mxn" | "pen" | "anos" | "meses"
    )
}

/// Joins a list ("2 zapatos y 1 camisa"): ends an item, opens a slot.
pub fn is_list_connector(w: &str) -> bool {
    matches!(w, "y" | "e" | "mas" | "tambien" | "ademas" | "aparte" | "otro" | "otra" | "otros" | "otras")
}

/// Verbs that announce products ("quiero", "cotízame"): what follows them is
/// expected to be products, so unknown words there are reported.
pub fn is_request(w: &str) -> bool {
    matches!(
        w,
        "quiero" | "quisiera" | "queria" | "necesito" | "necesitamos" | "ocupo" | "ocupamos" | "dame" | "deme"
            | "denme" | "cotiza" | "cotizas" | "cotizame" | "cotizar" | "cotizan" | "cotizacion" | "busco"
            | "buscamos" | "mandame" | "mandeme" | "envieme" | "enviame" | "pido" | "pedir" | "llevo"
            | "compro" | "comprar" | "queremos" | "quisieramos" | "encargo" | "encargar" | "agrega" | "agregame"
            | "anota" | "anotame" | "apunta" | "apuntame" | "ponme" | "pongame" | "regalame" | "vendeme"
            | "necesitaria" | "quiesiera" | "kiero"
    )
}

/// Words that sit between a product's words ("papel de baño") or before one;
/// inside an unknown fragment they are kept only when a content word follows.
pub fn is_joiner(w: &str) -> bool {
    matches!(w, "de" | "del" | "con" | "para" | "a" | "en" | "al")
}

/// Greetings, politeness, articles, pronouns and question words: never a
/// product, never reported.
pub fn is_filler(w: &str) -> bool {
    is_request(w)
        || is_joiner(w)
        || is_list_connector(w)
        || matches!(
            w,
            "hola" | "ola" | "holi" | "buenas" | "buenos" | "buen" | "dia" | "dias" | "tarde" | "tardes"
                | "noche" | "noches" | "saludos" | "hey" | "oye" | "oiga" | "disculpa" | "disculpe"
                | "porfa" | "porfis" | "porfavor" | "favor" | "por" | "pf" | "pls" | "plis" | "please"
                | "gracias" | "muchas" | "mil" | "amable" | "muy" | "me" | "te" | "le" | "les" | "nos" | "se"
                | "mi" | "mis" | "tu" | "tus" | "su" | "sus" | "yo" | "usted" | "ustedes" | "el" | "la"
                | "lo" | "los" | "las" | "unos" | "unas" | "algun" | "alguna" | "algunos" | "algunas"
                | "que" | "q" | "k" | "cuanto" | "cuanta" | "cuantos" | "cuantas" | "cual" | "cuales"
                | "como" | "cuesta" | "cuestan" | "costo" | "costaria" | "costarian" | "vale" | "valen"
                | "sale" | "salen" | "precio" | "precios" | "total" | "das" | "da" | "dan" | "puedes"
                | "puede" | "pueden" | "podrias" | "podria" | "podrian" | "seria" | "serian" | "es"
                | "son" | "si" | "ok" | "okey" | "va" | "bueno" | "pues" | "entonces" | "tambien"
                | "solo" | "solamente" | "nada" | "todo" | "eso" | "esto" | "este" | "esta" | "estos"
                | "estas" | "ese" | "esa" | "esos" | "esas" | "o" | "u" | "ni" | "pero" | "tienes"
                | "tienen" | "tiene" | "hay" | "venden" | "vendes" | "vende" | "manejan" | "manejas"
                | "tengo" | "tenga" | "saber" | "quisieras" | "hacer" | "hacerme" | "hazme" | "haz"
                | "ayuda" | "ayudas" | "ayudame" | "info" | "informacion" | "cotizaciones" | "pedido"
                | "orden" | "lista" | "siguiente" | "siguientes" | "sig" | "porque" | "cuando" | "donde"
                | "aqui" | "ahi" | "alla" | "ya" | "aun" | "ahora" | "hoy" | "manana" | "igual"
                | "cada" | "uno" | "una" | "unidad" | "xfa" | "xfavor" | "xf" | "bro" | "amigo" | "amiga"
                | "joven" | "senor" | "senora" | "senorita" | "jefe" | "estimado" | "estimada"
                | "saludo" | "graciass" | "grs" | "hi" | "hello" | "thanks"
        )
}

/// "sin cebolla": what follows is excluded, not ordered.
pub fn is_negation(w: &str) -> bool {
    matches!(w, "sin" | "excepto" | "menos")
}

/// Every word the parser reads by itself; never fuzzily matched to a product.
pub fn is_known(w: &str) -> bool {
    number_word(w).is_some()
        || multiplier(w).is_some()
        || is_half(w)
        || is_unit(w)
        || is_attribute_marker(w)
        || is_attribute_suffix(w)
        || is_filler(w)
        || is_negation(w)
}
